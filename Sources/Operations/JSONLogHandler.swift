import Foundation
import JSONPath
import Logging
import Synchronization

/// One JSON object per line on standard error, for log shippers (Fluent Bit, Vector, Loki's promtail):
/// `time` (RFC 3339, UTC, ms), `level`, `label`, `message`, the metadata keys as they are logged
/// (`sb.role`, `sb.endpoint`, `sb.message-id`, `sb.conversation`, ...), and `source`. Switchboard logs no
/// secret in metadata (broker URLs are logged redacted), so nothing is filtered here.
package struct JSONLogHandler: LogHandler {
    package var logLevel: Logger.Level = .info
    package var metadata: Logger.Metadata = [:]
    package var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let write: @Sendable (String) -> Void

    package init(label: String, write: @escaping @Sendable (String) -> Void = JSONLogHandler.standardError) {
        self.label = label
        self.write = write
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    package func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let own = event.metadata { merged.merge(own) { $1 } }
        write(Self.line(
            time: Date(), level: event.level, label: label, message: "\(event.message)", metadata: merged, source: event.source))
    }

    package static func line(
        time: Date, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata, source: String
    ) -> String {
        var fields: [(String, String)] = [
            ("time", quote(time.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)))),
            ("level", quote(level.rawValue)), ("label", quote(label)), ("message", quote(message)),
        ]
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) where !["time", "level", "label", "message", "source"].contains(key) {
            fields.append((key, json(value)))
        }
        fields.append(("source", quote(source)))
        return "{" + fields.map { "\(quote($0.0)):\($0.1)" }.joined(separator: ",") + "}"
    }

    private static func json(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let s): quote(s)
        case .stringConvertible(let c): quote(c.description)
        case .array(let a): "[" + a.map(json).joined(separator: ",") + "]"
        case .dictionary(let d): "{" + d.sorted { $0.key < $1.key }.map { "\(quote($0.key)):\(json($0.value))" }.joined(separator: ",") + "}"
        }
    }

    /// A JSON string literal (RFC 8259), by the project's JSON writer.
    static func quote(_ s: String) -> String { JSON.string(s).serializedString }

    private static let lock = Mutex(())

    /// Whole lines, never interleaved between threads.
    package static let standardError: @Sendable (String) -> Void = { line in
        lock.withLock { _ in FileHandle.standardError.write(Data((line + "\n").utf8)) }
    }
}
