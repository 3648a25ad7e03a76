"""Run cartdigest's weekly job on its schedule until stopped (same as `cartdigest schedule`).

    python scheduler.py            # block; SIGTERM or Ctrl-C stops it
    python scheduler.py --once     # run the weekly job now and exit
    python scheduler.py --next 5   # print the next 5 run times
    python scheduler.py --data-dir /srv/cartdigest --next 5
"""

import sys

from tracker.cli import main

GLOBAL_WITH_VALUE = ("--data-dir", "--config")


def schedule_argv(arguments: list[str]) -> list[str]:
    """Put cartdigest's global options before the `schedule` command, the rest after it."""
    global_options, rest = [], []
    iterator = iter(arguments)
    for argument in iterator:
        if argument in GLOBAL_WITH_VALUE:
            global_options += [argument, next(iterator, "")]
        elif argument.startswith(tuple(f"{option}=" for option in GLOBAL_WITH_VALUE)) or argument == "--debug":
            global_options.append(argument)
        else:
            rest.append(argument)
    return global_options + ["schedule"] + rest


if __name__ == "__main__":
    sys.argv[1:] = schedule_argv(sys.argv[1:])
    main()
