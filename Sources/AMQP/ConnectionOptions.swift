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

    package init(url: String, caFile: String? = nil) throws(AMQPError) {
        var buffer = Array(url.utf8CString)
        var info = amqp_connection_info()
        let status = buffer.withUnsafeMutableBufferPointer { ptr in
            amqp_parse_url(ptr.baseAddress, &info)
        }
        guard status == AMQP_STATUS_OK.rawValue else {
            throw AMQPError(.invalidURL, "not an AMQP URL: \(Self.redact(url)) (expected amqp[s]://user:password@host:port/vhost)")
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
    }

    /// The URL with the password replaced, fit for a log line.
    package var redacted: String {
        let scheme = tls ? "amqps" : "amqp"
        let v = vhost == "/" ? "" : vhost.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? vhost
        return "\(scheme)://\(user):***@\(host):\(port)/\(v)"
    }

    package static func redact(_ url: String) -> String {
        guard let at = url.lastIndex(of: "@"), let scheme = url.range(of: "://") else { return url }
        let credentials = url[scheme.upperBound..<at]
        guard let colon = credentials.firstIndex(of: ":") else { return url }
        return String(url[..<colon]) + ":***" + String(url[at...])
    }
}
