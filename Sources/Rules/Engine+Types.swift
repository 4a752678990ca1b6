import Foundation
import JSONPath

/// One inbound message as the engine sees it: already parsed and attributed to its endpoint.
package struct InboundEvent: Sendable {
    package var endpoint: String
    package var messageId: String
    package var type: String
    package var body: JSON
    /// The source endpoint's ticket id; nil for acks, which carry none.
    package var ticketId: String?
    package var who: String?
    /// Other endpoints' ticket ids this message carries (endpoint -> id).
    package var references: [String: String]
    /// For an ack: the outbound message it answers.
    package var ack: AckedMessage?
    /// For a timer firing: the timer's name.
    package var timer: String?
    /// When the message is decided (the worker's clock; a test's or a replay's frozen one): the engine
    /// reads no clock, so a time an ack names (`RetryPolicy.Wait.fromAck`) is counted from this.
    package var now: Date?

    package init(
        endpoint: String, messageId: String, type: String, body: JSON, ticketId: String?, who: String? = nil,
        references: [String: String] = [:]
    ) {
        self.endpoint = endpoint
        self.messageId = messageId
        self.type = type
        self.body = body
        self.ticketId = ticketId
        self.who = who
        self.references = references
    }
}

/// The outbound message an ack answers, as far as rules may match on it.
package struct AckedMessage: Sendable {
    package var messageId: String
    package var type: String
    package var rule: String
    package var target: String
    /// Its body as it was sent (empty when no longer stored): what `resend: same` sends again.
    package var body: Data

    package init(messageId: String, type: String, rule: String, target: String, body: Data = Data()) {
        self.messageId = messageId
        self.type = type
        self.rule = rule
        self.target = target
        self.body = body
    }
}

package enum EventType {
    package static let ack = "ack"
    package static let timer = "timer"
}

/// What the engine may know of a conversation.
/// Codable with each attribute value as its JSON text (a string): numbers cross the store's RPC and
/// PostgreSQL's functions exactly as written (`1.50`, integers of any length), which a JSON number through
/// JSONEncoder/JSONDecoder would not.
package struct ConversationSnapshot: Sendable, Codable {
    package var id: String
    package var version: Int
    /// Every endpoint's ticket id known for this conversation.
    package var references: [String: String]
    /// The conversation's memory, written and read by rules.
    package var attributes: [String: JSON]
    package var counters: [String: Int]

    package init(
        id: String, version: Int = 0, references: [String: String] = [:], attributes: [String: JSON] = [:],
        counters: [String: Int] = [:]
    ) {
        self.id = id
        self.version = version
        self.references = references
        self.attributes = attributes
        self.counters = counters
    }

    private enum CodingKeys: String, CodingKey { case id, version, references, attributes, counters }

    package init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        version = try c.decode(Int.self, forKey: .version)
        references = try c.decode([String: String].self, forKey: .references)
        counters = try c.decode([String: Int].self, forKey: .counters)
        attributes = try Self.decodeAttributes(try c.decode([String: String].self, forKey: .attributes))
    }

    package func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(version, forKey: .version)
        try c.encode(references, forKey: .references)
        try c.encode(counters, forKey: .counters)
        try c.encode(attributes.mapValues(\.serializedString), forKey: .attributes)
    }

    /// The counters people read (what-if, the admin): the engine's own (`Reserved`) left out.
    package var shownCounters: [String: Int] { counters.filter { !Reserved.isReserved($0.key) } }
    /// The attributes people read: the engine's own (`Reserved`) left out.
    package var shownAttributes: [String: JSON] { attributes.filter { !Reserved.isReserved($0.key) } }

    package static func decodeAttributes(_ texts: [String: String]) throws -> [String: JSON] {
        try texts.mapValues { text in
            do { return try JSON.parse(text) } catch { throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "attribute: \(error)")) }
        }
    }
}

package struct OutboundDraft: Sendable, Equatable {
    package var rule: String
    package var target: String
    package var type: String
    package var body: JSON
    package var delayMs: Int? = nil
}

package struct TimerDraft: Sendable, Equatable {
    package var rule: String
    package var name: String
    package var afterMs: Int
    /// More for the timer's body, which comes back with it (a retry policy's: what to send again).
    package var payload: [String: JSON] = [:]
}

package struct TimelineNote: Sendable, Equatable {
    package var kind: TimelineKind
    package var detail: String
    package var rule: String?
    package var body: String?

    package init(kind: TimelineKind, detail: String, rule: String? = nil, body: String? = nil) {
        self.kind = kind
        self.detail = detail
        self.rule = rule
        self.body = body
    }
}

package struct Decision: Sendable {
    /// A rule (or a retry policy's step) matched: counted for the metrics, and on the timeline, where
    /// capture and replay read the rules back from (`kind`: rule-matched, or dropped).
    mutating func matched(_ rule: String, _ detail: String, kind: TimelineKind = .ruleMatched) {
        matchedRules.append(rule)
        notes.append(TimelineNote(kind: kind, detail: detail, rule: rule))
    }

    package var matchedRules: [String] = []
    package var outbound: [OutboundDraft] = []
    package var notes: [TimelineNote] = []
    package var dropped = false
    /// Attributes as they are after the message (nil: removed), only those that changed.
    package var attributeChanges: [String: JSON?] = [:]
    /// Counters as they are after the message, only those that changed.
    package var counterChanges: [String: Int] = [:]
    package var timers: [TimerDraft] = []
    /// Set when a regular expression gave up on this message (see `RegexBudget`): the decision is not
    /// to be trusted, and the message is parked with this reason.
    package var tooSlow: String?
    /// Outbound messages this message marks failed (an error ack that no rule handled), by message id,
    /// with what the ack said.
    package var failedOutbound: [String: String] = [:]
}

/// Names of attributes and counters the engine keeps for itself in a conversation (the `sb.` prefix): set
/// by the engine, not by rules (the configuration may not name them), never on the timeline, left out where
/// people read a conversation.
package enum Reserved {
    package static let prefix = "sb."
    package static func isReserved(_ name: String) -> Bool { name.hasPrefix(prefix) }
    /// The ids of the comments Switchboard created on an endpoint's tickets (jira-cloud): a comment webhook
    /// naming one of them is our own write coming back (an echo). The newest `keptComments`.
    package static func comments(_ endpoint: String) -> String { "sb.comments.\(endpoint)" }
    package static let keptComments = 100
}
