import Foundation
import JSONPath
import Roles
import Rules
import Store

/// What `rules replay`, `rules capture`, `rules lint --history` and the replay benchmark read of a store:
/// conversations' timelines with the bodies of what they sent, a part at a time.
extension Stores {
    /// Conversations read and replayed at once: memory stays bounded by this many timelines.
    package static let replayPart = 200

    /// Replays the conversations `ids` names against `candidate`, reading `replayPart` of them at a time.
    package static func replay(
        _ store: any ConversationStore & AdminStore, ids: [String], candidate: SwitchboardConfig, since: Date? = nil,
        running: SwitchboardConfig? = nil
    ) async throws -> ReplayReport {
        var report = ReplayReport()
        var start = 0
        while start < ids.count {
            let part = Array(ids[start..<min(ids.count, start + replayPart)])
            start += part.count
            report.add(try await Offload.run { Replay.run(try recorded(store, ids: part), candidate: candidate, since: since, running: running) })
        }
        return report
    }

    /// Each conversation's timeline and the bodies of the messages it sent (the outbox's).
    package static func recorded(_ store: any ConversationStore & AdminStore, ids: [String]) throws -> [(id: String, timeline: [TimelineEntry], sentBodies: [String: Data])] {
        try ids.map { id in
            let timeline = try store.timeline(conversationId: id)
            var bodies: [String: Data] = [:]
            for case let o? in try store.outbound(messageIds: timeline.filter { $0.kind == .sent }.compactMap(\.messageId)) {
                bodies[o.messageId] = o.body
            }
            return (id, timeline, bodies)
        }
    }

    /// The inbound messages recorded since `since` with their bodies (what `rules lint --history` checks
    /// translations against), at most `limit`, newest conversations first.
    package static func recordedMessages(_ store: any ConversationStore & AdminStore, since: Date?, limit: Int) async throws -> [Lint.Sample] {
        let ids = try await store.conversationIds(changedSince: since)
        var out: [Lint.Sample] = []
        var start = 0
        while start < ids.count && out.count < limit {
            let part = Array(ids[start..<min(ids.count, start + replayPart)])
            start += part.count
            out += try await Offload.run {
                try part.flatMap { id in
                    try store.timeline(conversationId: id).compactMap { e -> Lint.Sample? in
                        guard e.kind == .received, since.map({ e.at >= $0 }) ?? true, let endpoint = e.endpoint, let text = e.body,
                            let body = try? JSON.parse(text)
                        else { return nil }
                        return Lint.Sample(endpoint: endpoint, type: e.messageType ?? "update", body: body)
                    }
                }
            }
        }
        return Array(out.prefix(limit))
    }
}
