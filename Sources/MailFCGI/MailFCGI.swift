import ArgumentParser
import CLinux
import Composition
import FastCGI
import Foundation
import LogFiles
import Logging
import Platform
import Queue
import Settings
import Templates

/// mailfcgi: the FastCGI responder behind nginx. Validates API requests and enqueues
/// emails as durable queue files under `DATA_DIR`; it never talks SMTP on the request path.
@main
struct MailFCGI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mailfcgi",
        abstract: "Answer the email API over FastCGI on a unix socket (FCGI_SOCKET).",
        discussion: "Settings come from the environment and the --env-file; see .env.example."
    )

    @Option(help: "A dotenv file read after the environment (missing is fine).")
    var envFile = ".env"

    @Flag(help: "Check the settings, print every problem, and exit (0 when all are valid).")
    var checkConfig = false

    func run() async throws {
        // Before any thread of ours exists: 2 malloc arenas, not up to 8 per core (see clinux.h).
        _ = clinux_limit_malloc_arenas(2)
        let check = SettingsCheck(envFile: envFile, checkConfig: checkConfig)
        guard let settings = try await check.settings(for: .responder) else { return }
        try LogSetup.bootstrap(settings, fileName: "mailfcgi.log")
        let logger = Logger(label: "mailfcgi")

        let routes = try RouteTable.router(settings: settings, logger: logger)
        let server = FastCGIServer(
            socketPath: settings.fcgiSocket,
            threads: settings.fcgiThreads,
            maxBodyBytes: settings.maxBodyBytes,
            drainTimeout: settings.shutdownTimeout,
            idleTimeout: settings.fcgiIdleTimeout,
            logger: logger,
            refusal: { status, reason in HTTPError(status, reason).response },
            respond: { request in routes.respond(to: request, logger: logger) }
        )
        try await DaemonLifecycle.run(logger: logger) {
            try server.start()
        } stop: {
            await server.stop()
        }
        logger.info("stopped")
    }
}
