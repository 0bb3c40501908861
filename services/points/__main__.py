"""`python -m services.points`: serve the faust stream and the points API with uvicorn."""

from services.points.app import create_app
from services.points.settings import PointsSettings
from shared.serve import serve

if __name__ == "__main__":
    settings = PointsSettings()
    serve(settings, create_app, settings.points_host, settings.points_port)
