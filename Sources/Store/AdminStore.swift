import Foundation
import JSONPath
import Rules

/// One endpoint's ticket and the conversation it belongs to.
package struct TicketHit: Sendable, Equatable, Codable {
    package var endpoint: String
    package var ticketId: String
    package var conversationId: String

    package init(endpoint: String, ticketId: String, conversationId: String) {
        self.endpoint = endpoint
        self.ticketId = ticketId
        self.conversationId = conversationId
    }
}

/// An outbound message as the store keeps it, with its failure when an error ack no rule handled marked it.
package struct OutboundRecord: Sendable, Equatable {
    package var outbound: StoredOutbound
    package var createdAt: Date
    package var failedAt: Date?
    package var failure: String?

    package init(outbound: StoredOutbound, createdAt: Date, failedAt: Date?, failure: String?) {
        self.outbound = outbound
        self.createdAt = createdAt
        self.failedAt = failedAt
        self.failure = failure
    }
}

/// What an administrator did to a parked message (replay, discard): who, when, why.
package struct AuditRecord: Sendable, Equatable, Codable {
    package var id: Int64
    package var at: Date
    package var who: String
    package var action: String
    package var reason: String
    /// The conversation the message belongs to, when it has one.
    package var conversationId: String?
    package var endpoint: String?
    package var messageId: String?
    /// The parked message's identity (`ParkedMessage.id`).
    package var parkedId: String
    package var detail: String

    package init(
        id: Int64 = 0, at: Date, who: String, action: String, reason: String, conversationId: String?, endpoint: String?,
        messageId: String?, parkedId: String, detail: String
    ) {
        self.id = id
        self.at = at
        self.who = who
        self.action = action
        self.reason = reason
        self.conversationId = conversationId
        self.endpoint = endpoint
        self.messageId = messageId
        self.parkedId = parkedId
        self.detail = detail
    }
}

/// A conversation as an administrator reads it: the state now, the whole timeline, the outbound
/// messages it sent (bodies while retention keeps them) and what administrators did.
package struct ConversationRecord: Sendable {
    package var snapshot: ConversationSnapshot
    package var createdAt: Date
    package var updatedAt: Date
    package var timeline: [TimelineEntry]
    /// By message id, for the timeline's `sent` entries.
    package var outbound: [String: OutboundRecord]
    package var audit: [AuditRecord]

    package init(
        snapshot: ConversationSnapshot, createdAt: Date, updatedAt: Date, timeline: [TimelineEntry],
        outbound: [String: OutboundRecord], audit: [AuditRecord]
    ) {
        self.snapshot = snapshot
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.timeline = timeline
        self.outbound = outbound
        self.audit = audit
    }
}

/// The timeline entries of one inbound message (a commit), newest first in a feed; `cursor` pages on.
package struct TimelineGroup: Sendable {
    package var cursor: Int64
    package var entries: [TimelineEntry]

    package init(cursor: Int64, entries: [TimelineEntry]) {
        self.cursor = cursor
        self.entries = entries
    }
}

/// Reading the store for the administrator's view: async (an HTTP server's event loop never waits on
/// the database), paged, and on the indexes the hot path already has, so that no write pays for it:
/// tickets by the reference table's key (endpoint, ticket id), a conversation's timeline by
/// (conversation, id), the feed by the timeline's own order, outbound bodies by message id.
package protocol AdminStore: ParkedStore {
    /// The conversations that hold this ticket id at any of these endpoints.
    func tickets(_ ticketId: String, endpoints: [String]) async throws -> [TicketHit]
    func record(conversationId: String) async throws -> ConversationRecord?
    /// The newest messages' timeline entries, one group per message, before `cursor` (nil: the newest);
    /// only one conversation's when `conversationId` is set.
    func recent(before cursor: Int64?, limit: Int, conversationId: String?) async throws -> [TimelineGroup]
    func append(audit: AuditRecord) async throws
    /// The newest audit records, optionally only those without a conversation.
    func audit(limit: Int, withoutConversation: Bool) async throws -> [AuditRecord]
    /// How many conversations the store holds (for the overview; may be an estimate on PostgreSQL).
    func conversationCount() async throws -> Int
    /// The ids of the conversations changed since `since` (every one when nil), most recently changed first:
    /// what `rules replay` and `rules lint --history` read.
    func conversationIds(changedSince since: Date?) async throws -> [String]
    /// Outbound messages sent with a delay that are not due yet, per target endpoint (by the store's
    /// record: committed at `created_at`, due `delay_ms` later). `within` bounds how far back to look:
    /// the longest delay the configuration has.
    func delayedPending(now: Date, within: TimeInterval) async throws -> [String: Int]
    /// Blanks one conversation's stored contents (a data-protection request): nil when there is none.
    func erase(conversationId: String) async throws -> Erasure?
}

extension TimelineGroup {
    /// Splits entries read newest first (with their row ids) into messages: the entries of one decision
    /// share their conversation and time.
    package static func group(_ rows: [(id: Int64, entry: TimelineEntry)]) -> [TimelineGroup] {
        var groups: [TimelineGroup] = []
        for row in rows {
            if let last = groups.last, let first = last.entries.first,
                first.conversationId == row.entry.conversationId, first.at == row.entry.at
            {
                groups[groups.count - 1].entries.insert(row.entry, at: 0)
                groups[groups.count - 1].cursor = row.id
            } else {
                groups.append(TimelineGroup(cursor: row.id, entries: [row.entry]))
            }
        }
        return groups
    }
}
