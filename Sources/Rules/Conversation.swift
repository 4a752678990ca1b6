import Foundation
import JSONPath

// What a conversation is made of, as the engine decides it and the store keeps it.

/// One endpoint's ticket, e.g. customer-a / INC0010001.
package struct TicketRef: Hashable, Sendable, Codable, CustomStringConvertible {
    package var endpoint: String
    package var ticketId: String

    package init(_ endpoint: String, _ ticketId: String) {
        self.endpoint = endpoint
        self.ticketId = ticketId
    }

    package var description: String { "\(endpoint)/\(ticketId)" }
}

/// An inbound message's identity for de-duplication: the ESB's message_id within its endpoint.
package struct InboundKey: Hashable, Sendable, Codable, CustomStringConvertible {
    package var endpoint: String
    package var messageId: String

    package init(_ endpoint: String, _ messageId: String) {
        self.endpoint = endpoint
        self.messageId = messageId
    }

    package var description: String { "\(endpoint)/\(messageId)" }
}

/// An outbound message as committed with the effects that caused it (the outbox). Re-published
/// unchanged, with the same message id, when the inbound message is redelivered after a crash.
package struct StoredOutbound: Sendable, Equatable, Codable {
    package var messageId: String
    package var conversationId: String
    package var inbound: InboundKey
    package var target: String
    package var type: String
    package var rule: String
    package var body: Data
    /// 0: publish now. Otherwise through the delay queue of that many milliseconds.
    package var delayMs: Int
    /// A message for an endpoint, or a timer that comes back to this conversation (`type` is its name).
    package var kind: Kind

    package enum Kind: String, Sendable, Codable {
        case message
        case timer
    }

    package init(
        messageId: String, conversationId: String, inbound: InboundKey, target: String, type: String, rule: String,
        body: Data, delayMs: Int = 0, kind: Kind = .message
    ) {
        self.messageId = messageId
        self.conversationId = conversationId
        self.inbound = inbound
        self.target = target
        self.type = type
        self.rule = rule
        self.body = body
        self.delayMs = delayMs
        self.kind = kind
    }
}

/// What a timeline entry records. The engine is the only author of these (`Engine.decide`); the admin adds
/// its own actions to a conversation's view as `admin(_:)`. Stored, sent to the API and shown as the raw
/// text; nothing outside this type writes one as a string.
package struct TimelineKind: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    package var rawValue: String
    package init(rawValue: String) { self.rawValue = rawValue }

    /// An inbound message about a ticket.
    package static let received = TimelineKind(rawValue: "received")
    /// An ack that says the message it answers was taken, or refused.
    package static let acked = TimelineKind(rawValue: "acked")
    package static let ackError = TimelineKind(rawValue: "ack-error")
    /// A refusal no rule handled: the answered message is marked failed.
    package static let ackUnhandled = TimelineKind(rawValue: "ack-unhandled")
    /// An ack of status `waiting` (the REST delivery's): the message waits for a rate limit or an open
    /// circuit and will be sent by the delivery itself; no rule sees it.
    package static let waiting = TimelineKind(rawValue: "waiting")
    /// An inbound message that is our own write coming back (the endpoint's `echo` conditions): no rule ran.
    package static let echo = TimelineKind(rawValue: "echo")
    package static let timerFired = TimelineKind(rawValue: "timer-fired")
    package static let linked = TimelineKind(rawValue: "linked")
    package static let warning = TimelineKind(rawValue: "warning")
    package static let ruleMatched = TimelineKind(rawValue: "rule-matched")
    package static let noRule = TimelineKind(rawValue: "no-rule")
    package static let dropped = TimelineKind(rawValue: "dropped")
    package static let attribute = TimelineKind(rawValue: "attribute")
    package static let counter = TimelineKind(rawValue: "counter")
    package static let delayScheduled = TimelineKind(rawValue: "delay-scheduled")
    /// A retry policy at work: a refusal it will send again, a send again, or giving up (`RetryPolicy`).
    package static let retry = TimelineKind(rawValue: "retry")
    package static let sent = TimelineKind(rawValue: "sent")
    /// An administrator's action (replay, discard, erase) shown in a conversation's view.
    package static func admin(_ action: String) -> TimelineKind { TimelineKind(rawValue: "admin-\(action)") }

    package var description: String { rawValue }

    package init(from decoder: Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }

    package func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}

package struct TimelineEntry: Sendable, Equatable, Codable {
    package var conversationId: String
    package var at: Date
    package var kind: TimelineKind
    package var endpoint: String?
    package var who: String?
    package var messageId: String?
    package var rule: String?
    package var detail: String
    /// The whole message an entry is about, as text: the inbound body of `received` and acks, or why no
    /// rule matched (`no-rule`, a JSON array of rule and reason). Absent for the rest.
    package var body: String?
    /// For `received`: how long after intake received the message it was decided (ms); its outbound
    /// messages leave right after the decision's commit.
    package var sinceIntakeMs: Int?
    /// The message's type: the inbound message's (`received`), the outbound one's (`sent`), the answered
    /// one's (acks).
    package var messageType: String?
    /// For `sent`: how long the message waits before it leaves (ms), when a rule delays it.
    package var delayMs: Int?
    /// For acks: the outbound message this ack answers.
    package var answers: String?
    /// On the entry that opens a message's decision (received, an ack, timer-fired): the configuration that
    /// decided it (the first 12 hex digits of its content hash, `ConfigSource.contentHash`).
    package var configuration: String?
    /// On the same entry: the conversation's version the message met. 0: it started the conversation, which
    /// was empty (no references, attributes, counters or timers), so a conversation's history can be run
    /// again from its first entry.
    package var met: Int?

    /// A rule's match as the timeline says it. One function, so a store may leave the text out and derive it.
    package static func matchedDetail(rule: String) -> String { "rule '\(rule)' matched" }

    /// A message sent, as the timeline says it: its type, where it goes, and when it leaves. Its body is the
    /// outbound row's (shown beside the entry while the bodies' retention keeps it), not copied into the text.
    package static func sentDetail(type: String, target: String, delayMs: Int?) -> String {
        "\(type) to \(target)" + (delayMs.map { " (leaves in \(Engine.format(ms: $0)))" } ?? "")
    }

    package init(
        conversationId: String, at: Date, kind: TimelineKind, endpoint: String? = nil, who: String? = nil,
        messageId: String? = nil, rule: String? = nil, detail: String, body: String? = nil
    ) {
        self.body = body
        self.conversationId = conversationId
        self.at = at
        self.kind = kind
        self.endpoint = endpoint
        self.who = who
        self.messageId = messageId
        self.rule = rule
        self.detail = detail
    }
}

