// LogFiles: swift-log to files under `LOG_DIR`, rotated at `LOG_MAX_BYTES`, and to standard
// error when it is a terminal (`LogSetup.bootstrap`).
