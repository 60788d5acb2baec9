"""Memory of a running process, from /proc/PID/status (proc(5))."""
import re
from pathlib import Path


def memory_mib(pid):
    """Peak resident set (VmHWM) and the resident set now, split into anonymous memory (heap,
    stacks: this process's own) and file-backed pages (program and library code, shared with
    every process mapping the same files), in MiB with one decimal."""
    status = Path(f"/proc/{pid}/status").read_text()
    def field(name):
        return round(int(re.search(rf"{name}:\s+(\d+) kB", status).group(1)) / 1024, 1)
    return {"peak_rss_mib": field("VmHWM"), "rss_anon_mib": field("RssAnon"), "rss_file_mib": field("RssFile")}
