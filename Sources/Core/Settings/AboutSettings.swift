// Settings: every setting, from the environment and `.env` (swift-configuration), all problems
// reported at once (`MailSettings`, `EnvironmentReader`, `ConfigError`), names no program reads
// (`SettingNames`), and the daemons' start-up check (`SettingsCheck`; the executables parse the
// command line). mailfcgi withholds the relay's settings (`MailSettings.Program.responder`).
