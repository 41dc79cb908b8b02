"""The health engine: detection, storage, fixes and bugs. Never imports textual."""
