"""Image sizes, apart from the torch code that uses them: the code location reads them when it
loads, and it must load without torch (every run worker and CLI call loads it)."""

DEFAULT_IMAGE_SIZE = 64  # the demo's and the tests' size: the simulator's images are 64x64
PRODUCTION_IMAGE_SIZE = 224  # what ImageNet-style encoders read
