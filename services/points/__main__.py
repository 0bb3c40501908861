"""`python -m services.points`: the faust stream and the points API, served by uvicorn."""

import uvicorn

from services.points.app import create_app
from services.points.settings import PointsSettings
from shared.logs import configure_logging


def main() -> None:
    settings = PointsSettings()
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.points_host,
        port=settings.points_port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


if __name__ == "__main__":
    main()
