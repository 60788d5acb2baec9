// The default templates, written to an empty templates directory on first start.
// Generated from templates/ by scripts/embed-templates.py; DefaultTemplatesTests checks the
// two agree. Edit the files in templates/, then run the script.

/// The four templates every installation starts with.
enum DefaultTemplates {
    struct File {
        let name: String
        let contents: String
    }

    static let descriptions: [String: String] = [
        "verify": "A verification code for sign-up or login.",
        "welcome": "A welcome message after sign-up.",
        "password_reset": "A password reset code.",
        "notification": "A general notification with a title and a message.",
    ]

    static let files: [File] = [
        File(
            name: "verify.txt",
            contents: """
                Your {{app_name}} verification code: {{code}}
                Hello,

                Your {{app_name}} verification code is:

                    {{code}}

                It expires in {{expiry_minutes}} minutes. If you did not ask for it, you can ignore this email.

                The {{app_name}} team

                """
        ),
        File(
            name: "verify.html",
            contents: """
                <!DOCTYPE html>
                <html>
                <body style="font-family: sans-serif; line-height: 1.5;">
                <p>Hello,</p>
                <p>Your {{app_name}} verification code is:</p>
                <p style="font-size: 1.6em; font-weight: bold; letter-spacing: 0.2em;">{{code}}</p>
                <p>It expires in {{expiry_minutes}} minutes. If you did not ask for it, you can ignore this email.</p>
                <p>The {{app_name}} team</p>
                </body>
                </html>

                """
        ),
        File(
            name: "welcome.txt",
            contents: """
                Welcome to {{app_name}}, {{name}}!
                Hello {{name}},

                Your {{app_name}} account is ready.

                    Username: {{username}}
                    Email:    {{email}}
                    Joined:   {{signup_date}}

                We are glad to have you.

                The {{app_name}} team

                """
        ),
        File(
            name: "welcome.html",
            contents: """
                <!DOCTYPE html>
                <html>
                <body style="font-family: sans-serif; line-height: 1.5;">
                <p>Hello {{name}},</p>
                <p>Your {{app_name}} account is ready.</p>
                <table>
                <tr><td>Username:</td><td>{{username}}</td></tr>
                <tr><td>Email:</td><td>{{email}}</td></tr>
                <tr><td>Joined:</td><td>{{signup_date}}</td></tr>
                </table>
                <p>We are glad to have you.</p>
                <p>The {{app_name}} team</p>
                </body>
                </html>

                """
        ),
        File(
            name: "password_reset.txt",
            contents: """
                Reset your {{app_name}} password
                Hello {{name}},

                Someone asked to reset the password of your {{app_name}} account. Your reset code is:

                    {{reset_code}}

                It is valid for {{expiry_hours}} hours. If it was not you, ignore this email: your password stays as it is.

                The {{app_name}} team

                """
        ),
        File(
            name: "password_reset.html",
            contents: """
                <!DOCTYPE html>
                <html>
                <body style="font-family: sans-serif; line-height: 1.5;">
                <p>Hello {{name}},</p>
                <p>Someone asked to reset the password of your {{app_name}} account. Your reset code is:</p>
                <p style="font-size: 1.6em; font-weight: bold; letter-spacing: 0.2em;">{{reset_code}}</p>
                <p>It is valid for {{expiry_hours}} hours. If it was not you, ignore this email: your password stays as it is.</p>
                <p>The {{app_name}} team</p>
                </body>
                </html>

                """
        ),
        File(
            name: "notification.txt",
            contents: """
                {{title}}
                {{title}}

                {{message}}

                The {{app_name}} team

                """
        ),
        File(
            name: "notification.html",
            contents: """
                <!DOCTYPE html>
                <html>
                <body style="font-family: sans-serif; line-height: 1.5;">
                <h2>{{title}}</h2>
                <p>{{message}}</p>
                <p>The {{app_name}} team</p>
                </body>
                </html>

                """
        ),
    ]
}
