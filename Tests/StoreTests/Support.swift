import Foundation

/// A database file of its own in a new folder under the temporary directory (the store creates the folder).
func temporarySQLitePath(_ prefix: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        .appendingPathComponent("switchboard.sqlite").path
}
