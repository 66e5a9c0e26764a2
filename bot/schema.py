"""Imports every model module so that ``Base.metadata`` knows all tables.

Alembic's env and the tests import this one module instead of listing features.
"""

from bot.db import Base
from ads import models as _ads  # noqa: F401
from bot import models as _core  # noqa: F401
from bot import outbox as _outbox  # noqa: F401
from bot import redraws as _redraws  # noqa: F401
from escalation import models as _escalation  # noqa: F401
from kb import models as _kb  # noqa: F401
from reports import models as _reports  # noqa: F401

metadata = Base.metadata
