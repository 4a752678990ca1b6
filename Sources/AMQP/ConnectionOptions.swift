import CRabbitMQ
import Foundation

/// Where and how to connect. Parsed from an `amqp://` or `amqps://` URL by rabbitmq-c's own parser
/// (percent-decoding included), so we accept exactly what the C client does.
package struct ConnectionOptions: Sendable {
    package var host: String
    package var port: Int
    package var user: String
    package var password: String
    package var vhost: String
    package var tls: Bool
    /// PEM file of the CAs that may sign the broker's certificate (amqps). nil: the system's bundle.
    package var caFile: String?
    /// Optional client certificate and key (PEM) for brokers that ask for one.
    package var clientCertFile: String?
    package var clientKeyFile: String?
    package var heartbeatSeconds: Int = 30
    package var connectTimeout: TimeInterval = 10
    package var rpcTimeout: TimeInterval = 30
    /// Shown in the management UI, so operators can tell our connections apart.
    package var connectionName: String = "switchboard"

    /// One broker node: where a connection may go.
    package struct Node: Sendable, Equatable {
        package var host: String
        package var port: Int
    }

    /// Every node of the cluster, in the order the URL names them (`host` and `port` are the first's).
    /// A connection tries them in turn, starting from the next one each time (`Connection`).
    package var nodes: [Node]

    /// `amqp[s]://user:password@host[:port][,host[:port]...]/vhost`: several comma-separated nodes of one
    /// cluster share the credentials and the vhost.
    package init(url: String, caFile: String? = nil) throws(AMQPError) {
        let urls = Self.split(url)
        var parsed: [ConnectionOptions] = []
        for one in urls { parsed.append(try ConnectionOptions(single: one, caFile: caFile)) }
        self = parsed[0]
        nodes = parsed.map { Node(host: $0.host, port: $0.port) }
    }

    private init(single url: String, caFile: String?) throws(AMQPError) {
        var buffer = Array(url.utf8CString)
        var info = amqp_connection_info()
        let status = buffer.withUnsafeMutableBufferPointer { ptr in
            amqp_parse_url(ptr.baseAddress, &info)
        }
        guard status == AMQP_STATUS_OK.rawValue else {
            throw AMQPError(.invalidURL, "not an AMQP URL: \(Self.redact(url)) (expected amqp[s]://user:password@host:port[,host:port...]/vhost)")
        }
        host = String(cString: info.host)
        port = Int(info.port)
        user = String(cString: info.user)
        password = String(cString: info.password)
        // "amqp://host/" parses to the empty vhost, which no broker has; everybody who writes it means "/".
        let parsedVhost = String(cString: info.vhost)
        vhost = parsedVhost.isEmpty ? "/" : parsedVhost
        tls = info.ssl != 0
        self.caFile = caFile
        nodes = [Node(host: host, port: port)]
    }

    /// One URL per node of a `host1:port,host2:port` list (the credentials and vhost repeated); the URL
    /// itself when it names one node. The host list is what follows the last `@` up to the next `/`.
    static func split(_ url: String) -> [String] {
        guard let scheme = url.range(of: "://") else { return [url] }
        let rest = url[scheme.upperBound...]
        let hostStart = rest.lastIndex(of: "@").map { rest.index(after: $0) } ?? rest.startIndex
        let hostEnd = rest[hostStart...].firstIndex(of: "/") ?? rest.endIndex
        let hosts = rest[hostStart..<hostEnd].split(separator: ",", omittingEmptySubsequences: false)
        guard hosts.count > 1 else { return [url] }
        let head = url[..<hostStart], tail = rest[hostEnd...]
        return hosts.map { String(head) + $0.trimmingCharacters(in: .whitespaces) + String(tail) }
    }

    /// This node's options: the same credentials, vhost and TLS, another address.
    package func at(_ node: Node) -> ConnectionOptions {
        var o = self
        o.host = node.host
        o.port = node.port
        return o
    }

    /// The URL with the password replaced, fit for a log line.
    package var redacted: String { redacted(hosts: "\(host):\(port)") }

    /// The same with every node: `amqps://user:***@a:5671,b:5671/vhost`.
    package var redactedCluster: String { redacted(hosts: nodes.map { "\($0.host):\($0.port)" }.joined(separator: ",")) }

    private func redacted(hosts: String) -> String {
        let v = vhost == "/" ? "" : vhost.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? vhost
        return "\(tls ? "amqps" : "amqp")://\(user):***@\(hosts)/\(v)"
    }

    package static func redact(_ url: String) -> String {
        guard let at = url.lastIndex(of: "@"), let scheme = url.range(of: "://") else { return url }
        let credentials = url[scheme.upperBound..<at]
        guard let colon = credentials.firstIndex(of: ":") else { return url }
        return String(url[..<colon]) + ":***" + String(url[at...])
    }
}
