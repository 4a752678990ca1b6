import Foundation

/// A parked message as the store keeps it: what `sb.parked` delivered, moved into a table by the store
/// role (acked only once the row is written), so that looking at it, replaying or discarding it never
/// goes through a queue (where every look is a delivery counted toward a delivery limit, and putting the
/// others back reorders them). Rows are kept in the order they arrived (`seq`): a ticket's parked
/// messages are replayed in the order they were parked.
package struct ParkedRow: Sendable, Equatable {
    /// Order of arrival in the store.
    package var seq: Int64
    /// The handle an operator names (a hash of when and why it was parked, its message id and body):
    /// stable, and the same for a redelivered copy, which is therefore kept once.
    package var id: String
    package var parkedAt: Date
    package var reason: String
    /// The reason with what varies between messages left out, for grouping.
    package var reasonGroup: String
    package var stage: String
    /// switchboard (our parking), broker (dead-lettered by the broker), unknown.
    package var origin: String
    package var endpoint: String?
    /// The ticket id at `endpoint`, when the body names one (for finding a conversation's parked copies).
    package var ticket: String?
    package var messageId: String?
    /// The parked message's AMQP properties, in the form the Switchboard module writes (opaque here).
    package var properties: Data
    /// The whole body, or the first bytes of it where a listing asks for an excerpt.
    package var body: Data
    /// The whole body's length.
    package var bodyBytes: Int
    /// Delivered again (not stored): a row of the same id is this one, stored before its ack was lost.
    /// A first delivery whose id is taken is another message that looks the same: stored under a suffix.
    package var redelivered = false

    package init(
        seq: Int64 = 0, id: String, parkedAt: Date, reason: String, reasonGroup: String, stage: String, origin: String,
        endpoint: String?, ticket: String?, messageId: String?, properties: Data, body: Data, bytes: Int? = nil
    ) {
        self.seq = seq
        self.id = id
        self.parkedAt = parkedAt
        self.reason = reason
        self.reasonGroup = reasonGroup
        self.stage = stage
        self.origin = origin
        self.endpoint = endpoint
        self.ticket = ticket
        self.messageId = messageId
        self.properties = properties
        self.body = body
        self.bodyBytes = bytes ?? body.count
    }
}

/// How many are parked, by reason group and by endpoint.
package struct ParkedCounts: Sendable {
    package var total = 0
    /// Largest group first.
    package var groups: [(reason: String, count: Int)] = []
    package var endpoints: [String: Int] = [:]

    package init() {}
}

/// Which parked rows to read.
package struct ParkedQuery: Sendable {
    /// Only this reason group's.
    package var group: String?
    /// Only these (by id).
    package var ids: [String]?
    /// Only rows after this `seq` (paging).
    package var after: Int64 = 0
    package var limit = 500
    /// Bodies cut to this many bytes (listings); nil: whole.
    package var excerpt: Int? = 512

    package init(group: String? = nil, ids: [String]? = nil, after: Int64 = 0, limit: Int = 500, excerpt: Int? = 512) {
        self.group = group
        self.ids = ids
        self.after = after
        self.limit = limit
        self.excerpt = excerpt
    }
}

/// The parked table, on both backends. `park` is synchronous (the store role's consumer thread); the
/// rest is for the administrator (async, never on an event loop's thread).
package protocol ParkedStore: Sendable {
    /// Writes the rows. A redelivered row whose id is there already (from an earlier call) is that row
    /// (kept once); any other row whose id is taken (two messages alike, also two alike redelivered
    /// together after a call that stored nothing) is stored as `<id>-2`, `-3`, ...: nothing parked is dropped.
    func park(_ rows: [ParkedRow]) throws
    /// How many are parked (the store role's gauge).
    func parkedTotal() throws -> Int
    func parkedCounts() async throws -> ParkedCounts
    /// In order of arrival.
    func parked(_ query: ParkedQuery) async throws -> [ParkedRow]
    /// Removes one row once it is replayed or discarded; false when it was not there (any more).
    func removeParked(id: String) async throws -> Bool
}
