#!/usr/bin/env python3
"""Writes Sources/Core/Templates/DefaultTemplates.swift from templates/*.txt|html.

The daemons write these defaults into an empty templates directory on first start, so a
deployment needs no copy of this repository. Run after editing a default template;
DefaultTemplatesTests fails while the two disagree.
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["verify", "welcome", "password_reset", "notification"]
DESCRIPTIONS = {
    "verify": "A verification code for sign-up or login.",
    "welcome": "A welcome message after sign-up.",
    "password_reset": "A password reset code.",
    "notification": "A general notification with a title and a message.",
}

out = ["""// The default templates, written to an empty templates directory on first start.
// Generated from templates/ by scripts/embed-templates.py; DefaultTemplatesTests checks the
// two agree. Edit the files in templates/, then run the script.

/// The four templates every installation starts with.
enum DefaultTemplates {
    struct File {
        let name: String
        let contents: String
    }

    static let descriptions: [String: String] = ["""]
out += [f'        "{n}": "{DESCRIPTIONS[n]}",' for n in NAMES]
out.append("    ]\n\n    static let files: [File] = [")
for name in NAMES:
    for ext in ("txt", "html"):
        text = (ROOT / "templates" / f"{name}.{ext}").read_text()
        if '"""' in text or "\\" in text:
            raise SystemExit(f"{name}.{ext}: triple quotes and backslashes cannot be embedded")
        # The line break before the closing delimiter is not part of a Swift string.
        out.append(f'        File(name: "{name}.{ext}", contents: """\n{text}\n"""),')
out.append("    ]\n}\n")
(ROOT / "Sources/Core/Templates/DefaultTemplates.swift").write_text("\n".join(out))
