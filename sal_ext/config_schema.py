"""Moved to :mod:`sal_ext.config.schema` (the rules next to the presets); kept so that
``from sal_ext.config_schema import validate_config, ...`` keeps working."""
from .config.schema import (  # noqa: F401  (re-exports)
    CROSS_RULES,
    DATASETS,
    EVAL_PROTOCOLS,
    NMS_METHODS,
    OPTIONAL_SECTIONS,
    RULES,
    SECTIONS,
    ConfigError,
    check_value,
    close_matches,
    describe,
    leaves,
    parse_range,
    unknown_key_message,
    validate_config,
)
from .config.schema import __all__  # noqa: F401
