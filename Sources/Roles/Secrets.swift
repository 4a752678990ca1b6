import Foundation
import Rules

/// Secrets named in the configuration (`secret_file`, `password_env`, ...), read when a role starts: never
/// written in the configuration, never logged.
package enum Secrets {
    package struct Missing: Error, CustomStringConvertible {
        package var description: String
        package init(description: String) { self.description = description }
    }

    /// The secret's bytes, a trailing newline dropped; `what` names it in the error.
    package static func read(_ source: SecretSource, what: String) throws(Missing) -> Data {
        var text: String
        switch source {
        case .file(let path):
            guard let data = FileManager.default.contents(atPath: path), let t = String(data: data, encoding: .utf8) else {
                throw Missing(description: "\(what): cannot read \(source)")
            }
            text = t
        case .env(let name):
            guard let t = ProcessInfo.processInfo.environment[name] else { throw Missing(description: "\(what): \(source) is not set") }
            text = t
        }
        while text.hasSuffix("\n") || text.hasSuffix("\r") { text.removeLast() }
        guard !text.isEmpty else { throw Missing(description: "\(what): \(source) is empty") }
        return Data(text.utf8)
    }
}
