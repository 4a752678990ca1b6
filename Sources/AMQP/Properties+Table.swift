import Foundation

/// A message's basic properties as one AMQP table (absent properties left out, headers nested as they
/// came) and back: how what a publisher set is kept as data inside another message.
extension Properties {
    private enum Key {
        static let contentType = "content_type", contentEncoding = "content_encoding", headers = "headers"
        static let deliveryMode = "delivery_mode", priority = "priority", correlationId = "correlation_id"
        static let replyTo = "reply_to", expiration = "expiration", messageId = "message_id"
        static let timestamp = "timestamp", type = "type", userId = "user_id", appId = "app_id", clusterId = "cluster_id"
    }

    package var table: [String: FieldValue] {
        var t: [String: FieldValue] = [:]
        func put(_ key: String, _ value: String?) { if let value { t[key] = .string(value) } }
        put(Key.contentType, contentType)
        put(Key.contentEncoding, contentEncoding)
        if deliveryModeSet { t[Key.deliveryMode] = .int(persistent ? 2 : 1) }
        if let priority { t[Key.priority] = .int(Int64(priority)) }
        put(Key.correlationId, correlationId)
        put(Key.replyTo, replyTo)
        put(Key.expiration, expiration)
        put(Key.messageId, messageId)
        if let timestamp { t[Key.timestamp] = .timestamp(timestamp) }
        put(Key.type, type)
        put(Key.userId, userId)
        put(Key.appId, appId)
        put(Key.clusterId, clusterId)
        if !headers.isEmpty { t[Key.headers] = .table(headers) }
        return t
    }

    package init(table t: [String: FieldValue]) {
        func string(_ key: String) -> String? {
            switch t[key] {
            case .string(let s)?: return s
            case .bytes(let d)?: return String(decoding: d, as: UTF8.self)
            default: return nil
            }
        }
        func int(_ key: String) -> Int64? { if case .int(let i)? = t[key] { return i } else { return nil } }
        self.init(
            contentType: string(Key.contentType), messageId: string(Key.messageId), correlationId: string(Key.correlationId),
            type: string(Key.type), replyTo: string(Key.replyTo), expiration: string(Key.expiration), appId: string(Key.appId),
            userId: string(Key.userId), persistent: int(Key.deliveryMode) == 2, contentEncoding: string(Key.contentEncoding),
            clusterId: string(Key.clusterId))
        deliveryModeSet = int(Key.deliveryMode) != nil
        if let p = int(Key.priority), let byte = UInt8(exactly: p) { priority = byte }
        if case .timestamp(let ts)? = t[Key.timestamp] { timestamp = ts }
        if case .table(let h)? = t[Key.headers] { headers = h }
    }
}

extension FieldValue {
    /// The bytes this value takes in an AMQP field table as this client writes it (the kind octet and the
    /// value): what a header table costs in a content header frame, which must fit in one frame.
    package var encodedSize: Int {
        switch self {
        case .string(let s): return 1 + 4 + s.utf8.count
        case .bytes(let d): return 1 + 4 + d.count
        case .int, .double, .timestamp: return 1 + 8
        case .bool: return 1 + 1
        case .float: return 1 + 4
        case .decimal: return 1 + 5
        case .table(let t): return 1 + Self.tableSize(t)
        case .array(let a): return 1 + 4 + a.reduce(0) { $0 + $1.encodedSize }
        case .void: return 1
        }
    }

    /// A table's size: its length prefix and each entry's short-string key and value.
    package static func tableSize(_ t: [String: FieldValue]) -> Int {
        4 + t.reduce(0) { $0 + 1 + $1.key.utf8.count + $1.value.encodedSize }
    }
}
