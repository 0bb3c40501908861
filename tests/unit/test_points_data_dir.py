"""faust creates only the last folder of its data dir: the service makes the rest."""

from typing import cast

from services.points.processor import EventProcessor
from services.points.settings import PointsSettings
from services.points.streaming import Membership, create_faust_app


def test_points_data_dir_is_created_with_its_parents(tmp_path):
    data_dir = tmp_path / "fresh-clone" / ".local" / "points"
    settings = PointsSettings(points_data_dir=data_dir)
    create_faust_app(settings, cast(EventProcessor, object()), Membership("g"))
    assert data_dir.is_dir()
