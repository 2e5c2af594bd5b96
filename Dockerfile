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
CMD ["sh", "-c", "exec daphne -b 0.0.0.0 -p ${PORT:-8000} nomaflow.asgi:application"]
