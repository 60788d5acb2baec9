import Foundation

/// A fresh directory under the system temp dir, removed when the test's scope ends.
final class TemporaryDirectory {
    let path: String

    init() {
        path = NSTemporaryDirectory() + "coretests-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// The files (not folders) in `sub`, sorted.
    func names(_ sub: String) -> [String] {
        let folder = path + "/" + sub
        return ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter {
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: folder + "/" + $0, isDirectory: &isDirectory)
                && !isDirectory.boolValue
        }.sorted()
    }
}
