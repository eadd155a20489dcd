/* SPDX-License-Identifier: Apache-2.0 */
/* JetStream consumers on their stream's shard. */
#include "core/js_int.h"

void js_consumers_run(struct js_shard *jsh) { (void)jsh; }
void js_consumer_on_ack(struct sub *sub, const char *subject, uint32_t subject_len,
                        const char *reply, uint32_t reply_len, const char *data,
                        uint32_t header_len, uint32_t total_len) {}
void js_consumers_on_stream_msg(struct js_stream *st) { (void)st; }
void js_consumers_free_all(struct js_stream *st) { (void)st; }
void js_consumer_api(struct js_shard *jsh, struct js_request *req, const char *stream) {}
