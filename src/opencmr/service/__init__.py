"""REST service and web viewer (``opencmr serve``): upload a study, follow its analysis, browse the results.

>>> from opencmr.service import ServiceConfig, create_app
>>> app = create_app(ServiceConfig(data_dir="serve-data"))   # doctest: +SKIP

See :mod:`opencmr.service.app` for the endpoints, :mod:`opencmr.service.uploads`
for what an upload may hold and :mod:`opencmr.service.jobs` for how jobs run.
"""

from opencmr.service.app import RESULT_FILES, create_app
from opencmr.service.config import ServiceConfig, ServiceConfigError, is_loopback

__all__ = ["RESULT_FILES", "ServiceConfig", "ServiceConfigError", "create_app", "is_loopback"]
