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
