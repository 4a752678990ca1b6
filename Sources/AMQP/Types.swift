import Foundation

/// An AMQP field value: headers, queue arguments, and whatever an ESB puts in its headers (nested
/// tables and arrays included), kept as it came so a parked message can be replayed as it was sent.
package indirect enum FieldValue: Sendable, Hashable, CustomStringConvertible {
    case string(String)
    /// A byte string (field kind 'x'), not necessarily UTF-8.
    case bytes(Data)
    /// Integers of any width arrive here; they are sent as 64-bit ('l').
    case int(Int64)
    case bool(Bool)
    case float(Float)
    case double(Double)
    /// A decimal: `value` / 10^`scale`.
    case decimal(scale: UInt8, value: UInt32)
    /// Seconds since 1970.
    case timestamp(UInt64)
    case table([String: FieldValue])
    case array([FieldValue])
    case void

    package var description: String {
        switch self {
        case .string(let s): return s
        case .bytes(let d): return String(decoding: d, as: UTF8.self)
        case .int(let i): return String(i)
        case .bool(let b): return b ? "true" : "false"
        case .float(let f): return String(f)
        case .double(let d): return String(d)
        case .decimal(let scale, let value): return "\(value)e-\(scale)"
        case .timestamp(let t): return String(t)
        case .table(let t): return "{" + t.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}"
        case .array(let a): return "[" + a.map(\.description).joined(separator: ", ") + "]"
        case .void: return ""
        }
    }
}

/// The basic properties of a message. Absent properties are nil.
package struct Properties: Sendable, Hashable {
    package var contentType: String?
    package var messageId: String?
    package var correlationId: String?
    package var type: String?
    package var replyTo: String?
    package var expiration: String?
    package var appId: String?
    package var userId: String?
    package var timestamp: UInt64?
    package var persistent: Bool
    package var headers: [String: FieldValue]
    package var contentEncoding: String?
    package var priority: UInt8?
    package var clusterId: String?
    /// Whether delivery_mode was set at all (`persistent` says which): kept so a replay is exact.
    package var deliveryModeSet: Bool = true

    package init(
        contentType: String? = nil, messageId: String? = nil, correlationId: String? = nil, type: String? = nil,
        replyTo: String? = nil, expiration: String? = nil, appId: String? = nil, userId: String? = nil,
        timestamp: UInt64? = nil, persistent: Bool = true, headers: [String: FieldValue] = [:],
        contentEncoding: String? = nil, priority: UInt8? = nil, clusterId: String? = nil
    ) {
        self.contentEncoding = contentEncoding
        self.priority = priority
        self.clusterId = clusterId
        self.contentType = contentType
        self.messageId = messageId
        self.correlationId = correlationId
        self.type = type
        self.replyTo = replyTo
        self.expiration = expiration
        self.appId = appId
        self.userId = userId
        self.timestamp = timestamp
        self.persistent = persistent
        self.headers = headers
    }
}

package struct Message: Sendable, Hashable {
    package var body: Data
    package var properties: Properties

    package init(body: Data, properties: Properties = Properties()) {
        self.body = body
        self.properties = properties
    }
}

/// A message the broker delivered to one of our consumers. Its tag is only valid on the connection
/// (and channel) that received it: `Connection` refuses to ack a tag from an earlier connection.
package struct Delivery: Sendable {
    package var deliveryTag: UInt64
    package var redelivered: Bool
    package var exchange: String
    package var routingKey: String
    package var consumerTag: String
    package var message: Message
    /// Which connection generation received it; acks check it.
    package var generation: UInt64

    package init(
        deliveryTag: UInt64, redelivered: Bool, exchange: String, routingKey: String, consumerTag: String, message: Message,
        generation: UInt64
    ) {
        self.deliveryTag = deliveryTag
        self.redelivered = redelivered
        self.exchange = exchange
        self.routingKey = routingKey
        self.consumerTag = consumerTag
        self.message = message
        self.generation = generation
    }
}

/// A message the broker handed back because no queue was bound for it (`mandatory`).
package struct ReturnedMessage: Sendable {
    package var replyCode: Int
    package var replyText: String
    package var exchange: String
    package var routingKey: String
    package var message: Message
}

/// What became of the messages published since the last wait.
package struct ConfirmOutcome: Sendable {
    /// Publish sequence numbers the broker refused (basic.nack).
    package var nacked: [UInt64] = []
    /// Messages returned as unroutable. The broker still confirms them, so they are reported here.
    package var returned: [ReturnedMessage] = []
    package var allConfirmed: Bool { nacked.isEmpty && returned.isEmpty }
}

package struct AMQPError: Error, CustomStringConvertible, Sendable {
    package enum Code: String, Sendable {
        case invalidURL = "invalid-url"
        case connect = "connect"
        case tls = "tls"
        case login = "login"
        case channelClosed = "channel-closed"
        case connectionClosed = "connection-closed"
        case consumerCancelled = "consumer-cancelled"
        case timeout = "timeout"
        case protocolError = "protocol"
        case staleDelivery = "stale-delivery"
        /// The broker blocks publishing (a resource alarm) and the caller gave up waiting.
        case blocked = "blocked"
    }

    package var code: Code
    package var message: String
    /// The AMQP reply code when the broker closed a channel or the connection (e.g. 404, 406, 320).
    package var replyCode: Int?

    package init(_ code: Code, _ message: String, replyCode: Int? = nil) {
        self.code = code
        self.message = message
        self.replyCode = replyCode
    }

    /// Whether reconnecting may help. A refused login or a declared queue whose arguments clash
    /// (406 PRECONDITION_FAILED) will not heal by itself, but we keep retrying with backoff anyway and
    /// let the operator see the error; only an invalid URL is final.
    package var isRetriable: Bool { code != .invalidURL }

    package var description: String {
        if let replyCode { return "amqp \(code.rawValue) (\(replyCode)): \(message)" }
        return "amqp \(code.rawValue): \(message)"
    }
}
