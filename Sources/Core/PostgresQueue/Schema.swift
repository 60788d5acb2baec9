import Foundation

/// The database's tables, as numbered migrations applied at start by every program that
/// opens the store. Each migration runs in one transaction with the version it reaches, under
/// a transaction-scoped advisory lock: hosts starting at once apply each migration once, the
/// others wait for the lock and then find it applied. A migration, once released, is never
/// edited; a change is a new one.
enum Schema {
    /// `pg_advisory_xact_lock` key for migrations ("mailmigr" as 8 ASCII bytes).
    static let migrationLock: Int64 = 0x6D61_696C_6D69_6772

    /// The migrations, in order; the schema's version is the count applied.
    static let migrations: [String] = [
        """
        CREATE TABLE mail_emails (
            request_id text COLLATE "C" PRIMARY KEY,
            -- waiting (queued, scheduled or deferred by its times), sending, held,
            -- dead_letter, sent, partially_sent, canceled
            state text NOT NULL,
            priority smallint NOT NULL,
            created_at timestamptz NOT NULL,
            -- not to be attempted before (send_at, or the next retry); NULL: now
            due_at timestamptz,
            -- waiting for its send_at, never attempted: 'scheduled' while due_at is ahead
            scheduled boolean NOT NULL DEFAULT false,
            retry_count integer NOT NULL DEFAULT 0,
            -- the email as the file queue stores it (QueueCoding JSON)
            body text NOT NULL,
            -- the claim: a fencing token from mail_lease_tokens, its owner, and until when
            -- it holds (the database's clock) unless renewed
            lease_token bigint,
            lease_owner text,
            lease_until timestamptz,
            claimed_at timestamptz,
            finished_at timestamptz,
            dead_letter_reason text,
            dead_letter_kind text,
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE SEQUENCE mail_lease_tokens;
        CREATE INDEX mail_emails_due ON mail_emails (priority, created_at, request_id)
            WHERE state = 'waiting';
        CREATE INDEX mail_emails_next_due ON mail_emails (due_at) WHERE state = 'waiting';
        CREATE INDEX mail_emails_leases ON mail_emails (lease_until) WHERE state = 'sending';
        CREATE INDEX mail_emails_finished ON mail_emails (finished_at)
            WHERE state IN ('sent', 'partially_sent', 'canceled');
        CREATE INDEX mail_emails_created ON mail_emails (created_at, request_id);

        CREATE TABLE mail_idempotency_keys (
            name text PRIMARY KEY,          -- the user, NUL, the key
            request_digest text NOT NULL,
            request_ids text NOT NULL,      -- JSON array
            answer text,                    -- the first answer's body
            created_at timestamptz NOT NULL
        );

        CREATE TABLE mail_suppressions (
            key text COLLATE "C" PRIMARY KEY,
            body text NOT NULL,             -- the Suppression as JSON
            expires_at timestamptz
        );

        CREATE TABLE mail_events (
            id text COLLATE "C" PRIMARY KEY,
            body text NOT NULL,             -- the PendingEvent as JSON
            failed boolean NOT NULL DEFAULT false,
            next_attempt_at timestamptz
        );

        CREATE TABLE mail_workers (
            id text PRIMARY KEY,            -- host name, then the process id
            host text NOT NULL,
            updated_at timestamptz NOT NULL,
            status text NOT NULL            -- the status file's JSON
        );
        """
    ]

    /// Applies the migrations `connection`'s database lacks.
    /// - Returns: the versions applied now (empty when the schema was current).
    /// - Throws: `DatabaseError`; a migration that fails is rolled back whole.
    @discardableResult
    static func migrate(_ connection: DatabaseConnection) throws(DatabaseError) -> [Int] {
        var applied: [Int] = []
        for (index, sql) in migrations.enumerated() {
            let version = index + 1
            try connection.execute("BEGIN")
            do {
                try connection.execute("SELECT pg_advisory_xact_lock($1)", ["\(migrationLock)"])
                try connection.execute(
                    "CREATE TABLE IF NOT EXISTS mail_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL)"
                )
                let found = try connection.execute("SELECT 1 FROM mail_schema WHERE version = $1", ["\(version)"])
                if found.rows.isEmpty {
                    try connection.executeScript(sql)
                    try connection.execute("INSERT INTO mail_schema VALUES ($1, now())", ["\(version)"])
                    applied.append(version)
                }
                try connection.execute("COMMIT")
            } catch {
                if !connection.isBroken { _ = try? connection.execute("ROLLBACK") }
                throw error
            }
        }
        let newest = try connection.execute("SELECT max(version) FROM mail_schema").first?[0].flatMap { Int($0) } ?? 0
        if newest > currentVersion {
            throw DatabaseError(
                sqlState: nil,
                "the database's schema is version \(newest), newer than this build knows (\(currentVersion)): "
                    + "run the newer build"
            )
        }
        return applied
    }

    /// The newest version this build knows.
    static var currentVersion: Int { migrations.count }
}
