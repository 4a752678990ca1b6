#ifndef SWITCHBOARD_CRABBITMQ_SHIM_H
#define SWITCHBOARD_CRABBITMQ_SHIM_H

// rabbitmq-c moved its headers into rabbitmq-c/ in 0.12; Debian 12 ships 0.11 with them in /usr/include.
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/framing.h>
#include <rabbitmq-c/tcp_socket.h>
#include <rabbitmq-c/ssl_socket.h>
#else
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <amqp_ssl_socket.h>
#endif

// amqp_login is variadic, which Swift cannot call.
static inline amqp_rpc_reply_t sb_amqp_login_plain(amqp_connection_state_t state, const char *vhost,
                                                   int channel_max, int frame_max, int heartbeat,
                                                   const char *user, const char *password) {
    return amqp_login(state, vhost, channel_max, frame_max, heartbeat, AMQP_SASL_METHOD_PLAIN, user, password);
}

// Login with client capabilities: we need publisher confirms and consumer cancel notifications.
static inline amqp_rpc_reply_t sb_amqp_login_with_properties(amqp_connection_state_t state, const char *vhost,
                                                             int channel_max, int frame_max, int heartbeat,
                                                             const amqp_table_t *properties,
                                                             const char *user, const char *password) {
    return amqp_login_with_properties(state, vhost, channel_max, frame_max, heartbeat, properties,
                                      AMQP_SASL_METHOD_PLAIN, user, password);
}

#endif
