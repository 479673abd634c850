/* lib/ws.h: RFC 6455 WebSocket framing, and a client over a socket or libcurl */
#ifndef DP_WS_H
#define DP_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/*
 * Opcodes.  dp_ws_next and dp_ws_recv return whole messages: TEXT or
 * BINARY (reassembled from fragments), PING, PONG or CLOSE.
 */
enum dp_ws_op {
	DP_WS_CONT = 0x0,
	DP_WS_TEXT = 0x1,
	DP_WS_BINARY = 0x2,
	DP_WS_CLOSE = 0x8,
	DP_WS_PING = 0x9,
	DP_WS_PONG = 0xa
};

/* Close codes used here (RFC 6455 §7.4.1). */
#define DP_WS_NORMAL		1000
#define DP_WS_GOING_AWAY	1001
#define DP_WS_PROTOCOL_ERROR	1002
#define DP_WS_NO_STATUS		1005	/* never sent: close without a code */
#define DP_WS_ABNORMAL		1006	/* never sent: connection lost */
#define DP_WS_BAD_DATA		1007	/* text that is not UTF-8 */
#define DP_WS_POLICY		1008
#define DP_WS_TOO_BIG		1009
#define DP_WS_INTERNAL		1011

/* Default cap of one reassembled message (1 MiB). */
#define DP_WS_MAX_MESSAGE	(1024 * 1024)

/* A decoded frame header. */
struct dp_ws_frame {
	bool		 fin;
	int		 opcode;
	bool		 masked;
	unsigned char	 mask[4];
	uint64_t	 len;		/* payload length */
	size_t		 hdrlen;	/* bytes of header, mask included */
};

/*
 * Decode the frame header at buf[0..n).  server: the frame comes from a
 * client and must be masked (a client's frames must not be).  Rejects
 * RSV bits, unknown opcodes, fragmented or >125-byte control frames,
 * 64-bit lengths with the top bit set, non-minimal length encodings and
 * payloads over max.  Returns 1 with *f filled, 0 when more bytes are
 * needed, -1 with err (err->code = the close code to send: 1002 or 1009).
 */
int	 dp_ws_frame_parse(const void *buf, size_t n, bool server,
	    uint64_t max, struct dp_ws_frame *f, struct dp_err *err);
/*
 * Append one frame to out: header, then the payload, masked with a
 * fresh random key when mask is true (client to server).
 */
void	 dp_ws_frame_encode(struct dp_buf *out, int opcode, bool fin,
	    const void *payload, size_t len, bool mask);
/* XOR data with key, as if data started at byte offset of the payload. */
void	 dp_ws_mask(void *data, size_t len, const unsigned char key[4],
	    uint64_t offset);
/* True if s[0..n) is valid UTF-8 (no overlongs, surrogates, > U+10FFFF). */
bool	 dp_ws_utf8_valid(const void *s, size_t n);
/* Sec-WebSocket-Accept of a Sec-WebSocket-Key: out[29]. */
void	 dp_ws_accept_key(const char *key, char out[29]);

/* A message returned by dp_ws_next / dp_ws_recv. */
struct dp_ws_msg {
	int		 opcode;	/* TEXT, BINARY, PING, PONG or CLOSE */
	const char	*data;		/* valid until the next call; NUL-ended */
	size_t		 len;
	int		 close_code;	/* CLOSE: code, or 1005 when none */
	const char	*close_reason;	/* CLOSE: reason text ("" when none) */
};

struct dp_ws;

/*
 * A connection endpoint without transport, for parsing bytes fed in by
 * hand (tests, other event loops).  server: this side is the server
 * (expects masked frames, sends unmasked ones).  max_message caps one
 * message after reassembly (0 = DP_WS_MAX_MESSAGE).
 */
struct dp_ws	*dp_ws_new(bool server, size_t max_message);
/* Wrap a connected socket (own: close it in dp_ws_free). */
struct dp_ws	*dp_ws_new_fd(int fd, bool own, bool server, size_t max_message);
/*
 * Wrap a libcurl easy handle (CURL *) that has connected with
 * CURLOPT_CONNECT_ONLY; the ws owns it from now on and cleans it up in
 * dp_ws_free.  Data moves with curl_easy_send/recv (TLS included).
 */
struct dp_ws	*dp_ws_new_curl(void *curl, size_t max_message);
void		 dp_ws_free(struct dp_ws *);

/* Bytes received from the peer, to parse. */
void	 dp_ws_feed(struct dp_ws *, const void *, size_t);
/*
 * Parse the next message out of the fed bytes.  Answers pings with a
 * pong and a close with a close (queued, see dp_ws_pending); enforces
 * UTF-8 for text, the message cap and the fragmentation rules.  1 with
 * *m, 0 when more bytes are needed, -1 on a protocol violation (err->code
 * = close code; a close frame with it is queued).
 */
int	 dp_ws_next(struct dp_ws *, struct dp_ws_msg *m, struct dp_err *err);
/* Bytes queued for the peer (frames built by dp_ws_send and replies). */
const struct dp_buf *dp_ws_pending(const struct dp_ws *);
void	 dp_ws_pending_clear(struct dp_ws *);

/*
 * Queue one message (unfragmented; masked when this side is the client)
 * and, with a transport, write everything queued.  0 or -1 with err.
 */
int	 dp_ws_send(struct dp_ws *, int opcode, const void *, size_t,
	    struct dp_err *);
/* Queue a close frame with code and reason (≤123 bytes) and flush it. */
int	 dp_ws_send_close(struct dp_ws *, int code, const char *reason,
	    struct dp_err *);
/* Write the queued bytes to the transport; 0 or -1 with err. */
int	 dp_ws_flush(struct dp_ws *, struct dp_err *);
/*
 * Wait up to timeout_ms (-1 = forever) for the next message from the
 * transport.  1 with *m, 0 on timeout, -1 on error or end of stream
 * (err->code: a close code; 1006 when the connection just ended).
 * After a CLOSE message the connection is finished.
 */
int	 dp_ws_recv(struct dp_ws *, int timeout_ms, struct dp_ws_msg *m,
	    struct dp_err *err);
/* The socket to poll for reading, or -1. */
int	 dp_ws_fd(const struct dp_ws *);
/* True when fed bytes hold a whole frame (poll would not tell); the start
 * of one is false: only the socket brings the rest. */
bool	 dp_ws_buffered(const struct dp_ws *);

/*
 * Client opening handshake over the transport: GET path with Host,
 * Upgrade, Sec-WebSocket-Key/Version, the given extra header lines
 * ("Name: value", NULL-terminated list, may be NULL) and, when protocols
 * is not NULL, Sec-WebSocket-Protocol.  Checks 101, Upgrade, Connection
 * and Sec-WebSocket-Accept.  Returns the HTTP status (101 on success,
 * with the server's chosen subprotocol in proto[nproto] when given) or
 * -1 on a transport or protocol failure (err).  On a status other than
 * 101 the response body (≤64 KiB) goes to body when given.
 */
int	 dp_ws_handshake(struct dp_ws *, const char *host, const char *path,
	    const char *const *headers, const char *protocols, char *proto,
	    size_t nproto, struct dp_buf *body, int timeout_ms,
	    struct dp_err *err);

/*
 * Connect a client: url is ws://host[:port]/path or
 * ws+unix://<socket path>:/path (path part after the first ':' that
 * follows the socket file).  Returns the open ws with *status = 101, or
 * NULL: on a refused upgrade *status holds the HTTP status and body (if
 * given) the response body; on failure *status = -1 and err is set.
 */
struct dp_ws	*dp_ws_connect(const char *url, const char *const *headers,
		    const char *protocols, int timeout_ms, int *status,
		    struct dp_buf *body, struct dp_err *err);
/*
 * Connect over TLS (or plain TCP) with a libcurl easy handle the caller
 * configured (certificates, CA, timeouts): sets CURLOPT_URL to url with
 * wss/ws mapped to https/http, CURLOPT_CONNECT_ONLY, HTTP/1.1 (no ALPN
 * h2), performs, then runs dp_ws_handshake.  The ws takes the handle in
 * every case (it is cleaned up on failure).  Same results as
 * dp_ws_connect.
 */
struct dp_ws	*dp_ws_connect_curl(void *curl, const char *url,
		    const char *const *headers, const char *protocols,
		    char *proto, size_t nproto, int timeout_ms, int *status,
		    struct dp_buf *body, struct dp_err *err);

#endif
