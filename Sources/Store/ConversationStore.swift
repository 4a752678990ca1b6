import Foundation
import JSONPath
import Rules

/// Everything one inbound message changes, applied atomically or not at all.
package struct Commit: Sendable, Codable {
    package var inbound: InboundKey
    package var conversationId: String
    /// The version the decision was made against; 0 creates the conversation.
    package var expectedVersion: Int
    package var newReferences: [TicketRef]
    package var timeline: [TimelineEntry]
    package var outbox: [StoredOutbound]
    /// Attributes after the message (nil removes one); only those that changed.
    package var attributes: [String: JSON?]
    /// Counters after the message; only those that changed.
    package var counters: [String: Int]
    /// Outbound messages this message marks failed (message id -> why), e.g. by an unhandled error ack.
    package var failedOutbound: [String: String]
    /// Outbound messages this message answers (an ack's): their outbox rows are no longer awaited by an
    /// ack, so retention may prune them after `retention_bodies_days` (unanswered ones stay as long as
    /// `retention_conversations_days`).
    package var answered: [String]
    /// What the inbound message said (a hash of its type, correlation id and body): the same message_id
    /// with another digest is another message, not a resend.
    package var digest: String
    package var at: Date
    /// Which attempt of the worker made this commit. The same request can reach the store twice (its
    /// answer was lost, the store restarted and served it again); the second time it is answered
    /// `committed`, as it was, not `duplicate` (which a worker reads as "someone else applied it").
    package var attempt: String

    package init(
        inbound: InboundKey, conversationId: String, expectedVersion: Int, newReferences: [TicketRef] = [],
        timeline: [TimelineEntry] = [], outbox: [StoredOutbound] = [], attributes: [String: JSON?] = [:],
        counters: [String: Int] = [:], failedOutbound: [String: String] = [:], answered: [String] = [], digest: String = "",
        at: Date, attempt: String = ""
    ) {
        self.answered = answered
        self.attempt = attempt
        self.digest = digest
        self.failedOutbound = failedOutbound
        self.attributes = attributes
        self.counters = counters
        self.inbound = inbound
        self.conversationId = conversationId
        self.expectedVersion = expectedVersion
        self.newReferences = newReferences
        self.timeline = timeline
        self.outbox = outbox
        self.at = at
    }

    private enum CodingKeys: String, CodingKey {
        case inbound, conversationId, expectedVersion, newReferences, timeline, outbox, setAttributes, removedAttributes,
            counters, at, attempt, failed, answered, digest
    }

    // Attributes travel as set (name -> value) and removed (names): a removal and a JSON null stay apart.
    package init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        inbound = try c.decode(InboundKey.self, forKey: .inbound)
        conversationId = try c.decode(String.self, forKey: .conversationId)
        expectedVersion = try c.decode(Int.self, forKey: .expectedVersion)
        newReferences = try c.decode([TicketRef].self, forKey: .newReferences)
        timeline = try c.decode([TimelineEntry].self, forKey: .timeline)
        outbox = try c.decode([StoredOutbound].self, forKey: .outbox)
        counters = try c.decode([String: Int].self, forKey: .counters)
        at = try c.decode(Date.self, forKey: .at)
        attempt = try c.decode(String.self, forKey: .attempt)
        failedOutbound = try c.decodeIfPresent([String: String].self, forKey: .failed) ?? [:]
        answered = try c.decodeIfPresent([String].self, forKey: .answered) ?? []
        digest = try c.decodeIfPresent(String.self, forKey: .digest) ?? ""
        attributes = [:]
        for (name, value) in try ConversationSnapshot.decodeAttributes(try c.decode([String: String].self, forKey: .setAttributes)) {
            attributes.updateValue(value, forKey: name)
        }
        for name in try c.decode([String].self, forKey: .removedAttributes) { attributes.updateValue(nil, forKey: name) }
    }

    package func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(inbound, forKey: .inbound)
        try c.encode(conversationId, forKey: .conversationId)
        try c.encode(expectedVersion, forKey: .expectedVersion)
        try c.encode(newReferences, forKey: .newReferences)
        try c.encode(timeline, forKey: .timeline)
        try c.encode(outbox, forKey: .outbox)
        try c.encode(counters, forKey: .counters)
        try c.encode(at, forKey: .at)
        try c.encode(attempt, forKey: .attempt)
        try c.encode(failedOutbound, forKey: .failed)
        try c.encode(answered, forKey: .answered)
        try c.encode(digest, forKey: .digest)
        // As JSON text, like ConversationSnapshot's: numbers cross exactly as written.
        try c.encode(attributes.compactMapValues { $0?.serializedString }, forKey: .setAttributes)
        try c.encode(attributes.filter { $0.value == nil }.keys.sorted(), forKey: .removedAttributes)
    }
}

package enum CommitOutcome: Sendable, Equatable, Codable {
    /// Applied; the conversation is now at this version.
    case committed(version: Int)
    /// This inbound message was applied before, by another attempt; here is what it sent then.
    case duplicate(conversationId: String, outbox: [StoredOutbound])
    /// The conversation changed since the snapshot (or a reference was taken meanwhile): evaluate again.
    case stale
    /// Another message with this message_id (another digest) was applied: this one is not a resend.
    case conflict(conversationId: String, digest: String, at: Date)
}

package struct StoreError: Error, CustomStringConvertible, Sendable, Codable {
    package enum Code: String, Sendable, Codable {
        /// The store could not be reached or did not answer in time, or the database is busy: try again.
        case unavailable
        /// The database refused what it was asked to store (a value it cannot hold, a limit): trying
        /// again gives the same answer. The message that caused it is parked.
        case refused
    }

    package var code: Code
    package var message: String
    package init(_ message: String, code: Code = .unavailable) {
        self.message = message
        self.code = code
    }
    package var description: String { "store: \(message)" }
    /// Infrastructure trouble heals (retry the batch); a refusal of content does not (park the message).
    package var isRetriable: Bool { code != .refused }

    private enum CodingKeys: String, CodingKey { case code, message }

    package init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        message = try c.decode(String.self, forKey: .message)
        code = try c.decodeIfPresent(Code.self, forKey: .code) ?? .unavailable
    }
}

// The conversation store, split by who calls it. Implementations are safe to call from any thread.
//   HotPathStore      a worker's batch: find, read what acks and timers name, commit
//   MembershipStore   the coordinator's heartbeats and leaves
//   MaintenanceStore  retention and the failed-message report, next to the database
//   OperatorReads     one conversation's details for the CLI, next to the database
// A worker without a database (RemoteStore, through the store role) is a `FleetStore`: the first two only.
// A database (SQLiteStore, PostgresStore) is a `ConversationStore`: all four. The admin's reads are
// `AdminStore`'s (async).

/// What a worker needs for a batch, in process or over the broker.
package protocol HotPathStore: Sendable {
    /// The conversation any of these references belongs to (the first one found, in the given order).
    func find(_ refs: [TicketRef]) throws -> ConversationSnapshot?
    /// `find` for many messages at once (one round trip for a remote store): one answer per list.
    func find(batch: [[TicketRef]]) throws -> [ConversationSnapshot?]
    /// The outbound messages a batch's acks name in their correlation_id (one round trip for a remote
    /// store): one answer per id, in order.
    func outbound(messageIds: [String]) throws -> [StoredOutbound?]
    /// The conversations a batch's acks and timers belong to: one answer per id, in order.
    func conversations(ids: [String]) throws -> [ConversationSnapshot?]
    /// Applies the commits in order, in one transaction; one outcome per commit.
    func commit(_ commits: [Commit]) throws -> [CommitOutcome]
    /// Several callers' commits at once (the store role's batch of requests): each list as `commit` would
    /// apply it, in one transaction where the store can; each caller's outcomes, or its own error.
    func commit(groups: [[Commit]]) -> [Result<[CommitOutcome], any Error>]
}

extension HotPathStore {
    /// One `commit` per caller.
    package func commit(groups: [[Commit]]) -> [Result<[CommitOutcome], any Error>] {
        groups.map { group in Result { try commit(group) } }
    }
}

/// Membership for spreading work over the fleet's processes.
package protocol MembershipStore: Sendable {
    /// Records that `member` is alive now and returns every member of its group (`MemberGroup`) seen
    /// within `ttl` seconds, sorted. All members compute the same assignment from it.
    func heartbeat(member: String, ttl: TimeInterval) throws -> [String]
    /// A member leaving on purpose (graceful shutdown): the others take its partitions at once.
    func leave(member: String) throws
}

/// What the roles of a worker or intake process use: served by the store role to processes without a database.
package typealias FleetStore = HotPathStore & MembershipStore

/// Maintenance, run next to the database (the store role, a CLI command).
package protocol MaintenanceStore: Sendable {
    /// Outbound messages marked failed (an error ack no rule handled): how many, and the newest `limit`.
    func failedOutbound(limit: Int) throws -> (count: Int, newest: [FailedOutbound])
    /// Removes what is older than the retention allows, measured from `now`; at most `limit` rows of each
    /// kind per call (call again while it returns a full count), so no pass holds the database for long.
    func prune(now: Date, retention: Settings.Retention, limit: Int) throws -> Pruned
}

/// One conversation's details, read next to the database (`switchboard timeline`, the tests).
package protocol OperatorReads: Sendable {
    func conversation(id: String) throws -> ConversationSnapshot?
    /// The outbound message with this id.
    func outbound(messageId: String) throws -> StoredOutbound?
    func timeline(conversationId: String) throws -> [TimelineEntry]
    /// Every reference of a conversation (endpoint -> ticket id).
    func references(conversationId: String) throws -> [String: String]
}

/// A database of conversations: every part.
package typealias ConversationStore = FleetStore & MaintenanceStore & OperatorReads

/// What one pruning pass removed.
package struct Pruned: Sendable, Equatable, Codable, CustomStringConvertible {
    /// Outbound messages (body and all) forgotten after the bodies' retention: an ack that comes later
    /// is parked as an ack for an unknown message. The timeline keeps that they were sent.
    package var bodies = 0
    /// Processed inbound ids forgotten: a resend after the dedupe window is applied again.
    package var processed = 0
    /// Conversations removed with everything they held.
    package var conversations = 0

    package init(bodies: Int = 0, processed: Int = 0, conversations: Int = 0) {
        self.bodies = bodies
        self.processed = processed
        self.conversations = conversations
    }

    package var description: String { "\(bodies) bodies, \(processed) processed ids, \(conversations) conversations" }
    package func full(_ limit: Int) -> Bool { bodies >= limit || processed >= limit || conversations >= limit }
}

/// An outbound message that was refused and that no rule handled.
package struct FailedOutbound: Sendable, Equatable {
    package var outbound: StoredOutbound
    package var failedAt: Date
    package var failure: String

    package init(outbound: StoredOutbound, failedAt: Date, failure: String) {
        self.outbound = outbound
        self.failedAt = failedAt
        self.failure = failure
    }
}

extension HotPathStore {
    package func find(batch: [[TicketRef]]) throws -> [ConversationSnapshot?] {
        try batch.map { try find($0) }
    }
}

/// A database answers a batch's reads one by one unless it has a faster way.
extension HotPathStore where Self: OperatorReads {
    package func outbound(messageIds: [String]) throws -> [StoredOutbound?] {
        try messageIds.map { try outbound(messageId: $0) }
    }

    package func conversations(ids: [String]) throws -> [ConversationSnapshot?] {
        try ids.map { try conversation(id: $0) }
    }
}

/// Members of one membership table in groups: an id's group is what comes before its first `/` (intakes:
/// `intake/host-pid-id`); a worker's id has none. A heartbeat answers with the caller's group only.
package enum MemberGroup {
    package static let intakePrefix = "intake/"

    package static func group(of id: String) -> Substring {
        guard let slash = id.firstIndex(of: "/") else { return "" }
        return id[..<slash]
    }

    /// The live members of `member`'s group among `live`.
    package static func peers(of member: String, among live: [String]) -> [String] {
        let mine = group(of: member)
        return live.filter { group(of: $0) == mine }
    }
}
