"""SageMaker API limits the provider validates against, before anything is sent.

Each is taken from botocore's service model (``sagemaker`` 2017-07-24), where the model has it;
``tests/test_limits.py`` checks every one against the installed botocore, so a change upstream
shows up as a failing test rather than as an API error at run time.
"""

from __future__ import annotations

# CreateTrainingJob
MAX_ENVIRONMENT_ENTRIES = 100
MAX_ENVIRONMENT_KEY_LENGTH = 512
MAX_ENVIRONMENT_VALUE_LENGTH = 512
MAX_HYPERPARAMETERS = 100
MAX_HYPERPARAMETER_KEY_LENGTH = 256
MAX_HYPERPARAMETER_VALUE_LENGTH = 2500
MAX_IMAGE_LENGTH = 255
MAX_CONTAINER_ARGUMENTS = 100
MAX_CONTAINER_ARGUMENT_LENGTH = 256
MAX_INPUT_CHANNELS = 20
MAX_CHANNEL_NAME_LENGTH = 64
MAX_S3_URI_LENGTH = 1024
MIN_ROLE_ARN_LENGTH = 20
MAX_ROLE_ARN_LENGTH = 2048
MAX_KEEP_ALIVE_SECONDS = 21600
MIN_RUNTIME_SECONDS = 1
#: The service model gives no maximum; the API documentation says 28 days.
MAX_RUNTIME_SECONDS = 28 * 24 * 3600

# CreateProcessingJob (batch)
MAX_PROCESSING_ENVIRONMENT_ENTRIES = 100
MAX_PROCESSING_ENVIRONMENT_VALUE_LENGTH = 256
MAX_PROCESSING_INPUTS = 10
MAX_PROCESSING_OUTPUTS = 10
MAX_PROCESSING_INSTANCE_COUNT = 100
MAX_PROCESSING_VOLUME_SIZE_GB = 16384
MAX_PROCESSING_RUNTIME_SECONDS = 777600

# Tags (every SageMaker resource)
MAX_TAGS = 50
MAX_TAG_KEY_LENGTH = 128
MAX_TAG_VALUE_LENGTH = 256

#: Patterns copied verbatim from the service model, matched against the whole value.
ENVIRONMENT_KEY_PATTERN = r"[a-zA-Z_][a-zA-Z0-9_]*"
CHANNEL_NAME_PATTERN = r"[A-Za-z0-9\.\-_]+"
ROLE_ARN_PATTERN = r"arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+"
