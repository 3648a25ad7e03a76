# Jinja2 templates shipped with cartdigest (installed as the `cartdigest_templates` package).
