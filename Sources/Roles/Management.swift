import AMQP
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

package struct ManagementError: Error, LocalizedError, CustomStringConvertible {
    package var description: String
    package var errorDescription: String? { description }
}

/// A queue as RabbitMQ's management API describes it.
package struct QueueInfo: Sendable {
    package var name: String
    package var messages: Int
    package var consumers: Int
    /// The `timestamp` property of the message at the head, when it has one (Switchboard's own messages do).
    package var headTimestamp: Date?

    package init(name: String, messages: Int, consumers: Int, headTimestamp: Date? = nil) {
        self.name = name
        self.messages = messages
        self.consumers = consumers
        self.headTimestamp = headTimestamp
    }
}

/// RabbitMQ's management API, read for queue depths, consumers and the oldest message's age: one
/// request for every queue of the vhost.
package struct Management: Sendable {
    var base: String
    var user: String
    var password: String
    var vhost: String

    /// `url`: the management API's base (credentials in it override the broker's); nil: derived from the broker URL.
    package init(url: String?, broker: ConnectionOptions) {
        base = url ?? "\(broker.tls ? "https" : "http")://\(broker.host):\(broker.tls ? 15671 : 15672)"
        while base.hasSuffix("/") { base.removeLast() }
        user = broker.user
        password = broker.password
        vhost = broker.vhost
        if let u = URLComponents(string: base), let name = u.user {
            user = name
            password = u.password ?? ""
            var stripped = u
            stripped.user = nil
            stripped.password = nil
            base = stripped.string ?? base
        }
    }

    package var redacted: String { base }

    /// A 401 answer comes as an authentication challenge, on which FoundationNetworking's URLSession
    /// without a delegate waits forever (its timeout does not fire): this one refuses every challenge.
    private static let session = URLSession(configuration: .ephemeral, delegate: RefuseChallenges(), delegateQueue: nil)

    private final class RefuseChallenges: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
        func urlSession(
            _ session: URLSession, task: URLSessionTask, didReceive challenge: URLAuthenticationChallenge,
            completionHandler: @escaping @Sendable (URLSession.AuthChallengeDisposition, URLCredential?) -> Void
        ) {
            completionHandler(.cancelAuthenticationChallenge, nil)
        }
    }

    package func queues() async throws -> [String: QueueInfo] {
        let v = vhost.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? vhost
        guard let url = URL(string: "\(base)/api/queues/\(v)?columns=name,messages,consumers,head_message_timestamp") else {
            throw ManagementError(description: "management_url \(base) is not a URL")
        }
        var request = URLRequest(url: url, timeoutInterval: 5)
        request.setValue("Basic " + Data("\(user):\(password)".utf8).base64EncodedString(), forHTTPHeaderField: "Authorization")
        let data: Data
        let response: URLResponse
        do {
            // In a task of its own that nothing cancels: FoundationNetworking deadlocks when a task awaiting
            // `data(for:)` is cancelled as its answer arrives (the cancel holds the task's status lock and
            // waits for the session's queue, which waits for that lock to resume the task). Seen as a
            // graceful shutdown that never ended (every thread's stack in the ESB test's output). The
            // request's own timeout (5 s) bounds the wait.
            (data, response) = try await Task.detached { [request] in try await Self.session.data(for: request) }.value
        } catch let e as URLError where e.code == .cancelled {
            // Only our delegate cancels: the API asked for other credentials.
            throw ManagementError(
                description: "RabbitMQ's management API at \(base) refused user '\(user)' (401): check the credentials in "
                    + "management_url; the user needs the monitoring (or management) tag and access to vhost '\(vhost)'")
        }
        guard let http = response as? HTTPURLResponse, http.statusCode == 200 else {
            let code = (response as? HTTPURLResponse)?.statusCode ?? 0
            throw ManagementError(description: "RabbitMQ's management API at \(base) answered \(code)")
        }
        guard let list = try JSONSerialization.jsonObject(with: data) as? [[String: Any]] else { return [:] }
        var out: [String: QueueInfo] = [:]
        for q in list {
            guard let name = q["name"] as? String else { continue }
            let ts = (q["head_message_timestamp"] as? NSNumber).map { Date(timeIntervalSince1970: $0.doubleValue) }
            out[name] = QueueInfo(
                name: name, messages: (q["messages"] as? NSNumber)?.intValue ?? 0, consumers: (q["consumers"] as? NSNumber)?.intValue ?? 0,
                headTimestamp: ts)
        }
        return out
    }
}

