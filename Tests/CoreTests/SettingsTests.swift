import Testing

@testable import Delivery
@testable import Settings

@Suite struct SettingsTests {
    func settings(_ variables: [String: String]) throws -> MailSettings {
        try MailSettings(EnvironmentReader(variables: variables))
    }

    @Test func defaultsWithNothingSet() throws {
        let s = try settings([:])
        #expect(s.smtp == nil)
        #expect(s.workers == 3)
        #expect(s.pollingInterval == 5)
        #expect(s.autoProcessing)
        #expect(
            s.delivery == DeliveryPolicy(retry: RetryPolicy(maxRetries: 3, baseDelay: 1), maxQueueLifetime: 432_000)
        )
        #expect(s.deliveryPauseMax == 300)
        #expect(s.maxBodyBytes == 15_029_588)  // MAX_MESSAGE_BYTES 10 MiB * 4/3 + 1 MiB
        #expect(s.maxMessageBytes == 10 << 20)
        #expect(s.maxAttachments == 20)
    }

    @Test func queueStoreChoice() throws {
        #expect(try settings([:]).queueStore == .file)
        #expect(try settings([:]).claimLease == 30)
        let url = "postgresql://mail:pw@db.internal/mail?sslmode=verify-full"
        let s = try settings(["QUEUE_STORE": "postgres", "DATABASE_URL": url, "CLAIM_LEASE": "5"])
        #expect(s.queueStore == .postgres(url: url))
        #expect(s.claimLease == 5)
        let keywords = "host=db.internal dbname=mail"
        #expect(
            try settings(["QUEUE_STORE": "PostgreSQL", "DATABASE_URL": keywords]).queueStore == .postgres(url: keywords)
        )
    }

    @Test func seedVariablesKeepTheirMeaning() throws {
        let s = try settings([
            "SENDER_EMAIL": "me@example.org", "PASSWORD": "secret", "SMTP_SERVER": "smtp.example.org",
            "PORT": "587", "AUTO_PROCESSING_ENABLED": "False", "NUM_WORKERS": "8", "WORKER_POLLING_INTERVAL": "2",
        ])
        #expect(s.sender.address == "me@example.org")
        #expect(
            s.smtp == SMTPSettings(host: "smtp.example.org", port: 587, username: "me@example.org", password: "secret")
        )
        #expect(!s.autoProcessing)
        #expect(s.workers == 8)
        #expect(s.pollingInterval == 2)
    }

    @Test(arguments: [
        (["NUM_WORKERS": "three"], "NUM_WORKERS"), (["NUM_WORKERS": "0"], "NUM_WORKERS"),
        (["PORT": "70000", "SMTP_SERVER": "h", "SENDER_EMAIL": "a@b.c"], "PORT"),
        (["AUTO_PROCESSING_ENABLED": "maybe"], "AUTO_PROCESSING_ENABLED"),
        (["SMTP_TLS": "sometimes", "SMTP_SERVER": "h", "SENDER_EMAIL": "a@b.c"], "SMTP_TLS"),
        (["SMTP_SERVER": "h"], "SENDER_EMAIL"), (["SENDER_EMAIL": "nobody"], "SENDER_EMAIL"),
        (["WORKER_POLLING_INTERVAL": "-1"], "WORKER_POLLING_INTERVAL"), (["LOG_LEVEL": "loud"], "LOG_LEVEL"),
        (["LOG_FORMAT": "xml"], "LOG_FORMAT"),
        (["QUEUE_STORE": "redis"], "QUEUE_STORE"), (["QUEUE_STORE": "postgres"], "DATABASE_URL"),
        (["QUEUE_STORE": "postgres", "DATABASE_URL": "mysql://h/db"], "DATABASE_URL"),
        (["DATABASE_URL": "postgresql://h/db"], "DATABASE_URL"), (["CLAIM_LEASE": "0"], "CLAIM_LEASE"),
    ])
    func badValueStopsNamingTheVariable(_ variables: [String: String], _ name: String) {
        #expect { try settings(variables) } throws: { ($0 as? ConfigError)?.variable == name }
    }

    @Test func everyBadValueIsReportedAtOnce() {
        #expect {
            try settings(["NUM_WORKERS": "x", "PORT": "0", "LOG_LEVEL": "loud", "SENDER_NAME": "a\nb"])
        } throws: {
            Set(($0 as? ConfigError)?.problems.map(\.variable) ?? []) == [
                "NUM_WORKERS", "PORT", "LOG_LEVEL", "SENDER_NAME",
            ]
        }
    }

    @Test(arguments: [
        ("SMTP_PORT", "PORT"), ("NUM_WORKER", "NUM_WORKERS"), ("WORKERS", "NUM_WORKERS"),
        ("smtp_server", "SMTP_SERVER"), ("RETRY_DELAY", "RETRY_BASE_DELAY"), ("COMPLETELY_ELSE", nil),
    ])
    func unreadNamesInTheFileGetTheClosestKnownName(_ typo: String, _ closest: String?) throws {
        let env = EnvironmentReader(variables: [:], fileNames: [typo, "DATA_DIR"])
        _ = try MailSettings(env)
        let unread = env.unreadNames()
        #expect(unread.map(\.name) == [typo])
        #expect(unread.first?.closest == closest)
    }

    @Test func dotenvNamesSkipCommentsAndExport() {
        #expect(
            EnvironmentReader.names(inDotenv: "# A=1\nB=2\n  export C=3\n\nD = 4\nnot a line\n") == ["B", "C", "D"]
        )
    }
}
