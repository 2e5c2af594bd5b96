# One image for every nomaflow process: web (the default command), worker and scheduler.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NOMAFLOW_VAR_DIR=/app/var

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
# /app/var is a volume in docker-compose.yml; create it owned by the user so the volume is too.
# No collectstatic: with NOMAFLOW_SERVE_STATIC the web process serves from the installed apps.
RUN useradd --create-home --uid 1000 nomaflow && mkdir -p /app/var && chown nomaflow /app/var
USER nomaflow

EXPOSE 8000
# The web process (the default command) answers /livez; a worker or scheduler container from
# this image sets its own check, `python manage.py healthcheck worker|scheduler` (see
# docker-compose.yml). The probe's Host is 127.0.0.1: keep it in ALLOWED_HOSTS (README, "Health checks").
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/livez', timeout=4)"
CMD ["sh", "-c", "exec daphne -b 0.0.0.0 -p ${PORT:-8000} nomaflow.asgi:application"]
