import Foundation
import Roles
import Rules
import Store

/// What `rules replay` (and the replay benchmark) reads of a store: the conversations recorded in a window,
/// and each one's timeline with the bodies of what it sent, a part at a time.
extension Stores {
    /// Conversations read and replayed at once: memory stays bounded by this many timelines.
    package static let replayPart = 200

    /// The ids of the conversations with a message decided since `since` (every one when nil), newest first.
    package static func recordedConversationIds(_ store: any ConversationStore & AdminStore, since: Date?) async throws -> [String] {
        var ids: [String] = []
        var seen: Set<String> = []
        var cursor: Int64?
        while true {
            let groups = try await store.recent(before: cursor, limit: 500, conversationId: nil)
            guard let last = groups.last else { break }
            for g in groups {
                guard let e = g.entries.first else { continue }
                if let since, e.at < since { return ids }
                if seen.insert(e.conversationId).inserted { ids.append(e.conversationId) }
            }
            cursor = last.cursor
        }
        return ids
    }

    /// Replays the conversations `ids` names against `candidate`, reading `replayPart` of them at a time.
    package static func replay(
        _ store: any ConversationStore & AdminStore, ids: [String], candidate: SwitchboardConfig
    ) async throws -> ReplayReport {
        var report = ReplayReport()
        var start = 0
        while start < ids.count {
            let part = Array(ids[start..<min(ids.count, start + replayPart)])
            start += part.count
            report.add(try await Offload.run { Replay.run(try recorded(store, ids: part), candidate: candidate) })
        }
        return report
    }

    /// Each conversation's timeline and the bodies of the messages it sent (the outbox's).
    static func recorded(_ store: any ConversationStore & AdminStore, ids: [String]) throws -> [(id: String, timeline: [TimelineEntry], sentBodies: [String: Data])] {
        try ids.map { id in
            let timeline = try store.timeline(conversationId: id)
            var bodies: [String: Data] = [:]
            for case let o? in try store.outbound(messageIds: timeline.filter { $0.kind == .sent }.compactMap(\.messageId)) {
                bodies[o.messageId] = o.body
            }
            return (id, timeline, bodies)
        }
    }
}
