"""Features shared by training (offline, over frames) and the worker (online, over state).

The public API; see :mod:`stream_app.features.api` for the vector, the family modules
(:mod:`~stream_app.features.context`, :mod:`~stream_app.features.customer`,
:mod:`~stream_app.features.merchant`) for each feature's exact definition; the customer family
keeps its state and snapshot format in :mod:`~stream_app.features.customer_state` and its
whole-frame computation in :mod:`~stream_app.features.customer_offline`.
"""

from stream_app.features.api import (
    FEATURE_NAMES,
    event_row,
    feature_vector_to_dict,
    observe_event,
    observe_transaction,
    offline_features,
    online_features,
    online_features_batch,
)
from stream_app.features.context import CONTEXT_FEATURES
from stream_app.features.core import (
    MERCHANT_CATEGORIES,
    MISSING,
    TRANSACTION_TYPES,
    UNKNOWN_MERCHANT,
    Event,
    merchant_key,
    prepare_event,
    to_micros,
)
from stream_app.features.customer import CUSTOMER_FEATURES, customer_features
from stream_app.features.customer_state import CustomerState
from stream_app.features.merchant import (
    MERCHANT_FEATURES,
    VOLUME_KEPT_US,
    VOLUME_LAG_US,
    MerchantState,
    count_merchant_volume,
    expire_merchant_volume,
    merchant_features,
    observe_label,
)

__all__ = [
    "CONTEXT_FEATURES",
    "CUSTOMER_FEATURES",
    "FEATURE_NAMES",
    "MERCHANT_CATEGORIES",
    "MERCHANT_FEATURES",
    "MISSING",
    "TRANSACTION_TYPES",
    "UNKNOWN_MERCHANT",
    "VOLUME_KEPT_US",
    "VOLUME_LAG_US",
    "CustomerState",
    "Event",
    "MerchantState",
    "count_merchant_volume",
    "customer_features",
    "event_row",
    "expire_merchant_volume",
    "feature_vector_to_dict",
    "merchant_features",
    "merchant_key",
    "observe_event",
    "observe_label",
    "observe_transaction",
    "offline_features",
    "online_features",
    "online_features_batch",
    "prepare_event",
    "to_micros",
]
