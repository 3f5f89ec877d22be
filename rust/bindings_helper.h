/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Headers whose declarations the kernel crate's own bindings lack. bindgen turns only these
 * files, or single named items of them (allowlisted in Kbuild), into Rust; every type they
 * use from elsewhere (bio, block_device, queue_limits...) comes from `kernel::bindings`.
 */
#include <crypto/hash.h>
#include <keys/user-type.h>
#include <linux/crc32c.h>
#include <linux/device-mapper.h>
#include <linux/dlm.h>
#include <linux/in.h>
#include <linux/raid/pq.h>
#include <linux/raid/xor.h>
#include <linux/tcp.h>
#include <net/net_namespace.h>
#include <net/sock.h>
#include "helpers.h"

/*
 * Constants defined by macros with casts, which bindgen cannot evaluate: give them a typed
 * const that it can (the kernel crate's RUST_CONST_HELPER_ trick).
 */
const blk_opf_t AMF_CONST_REQ_PREFLUSH = REQ_PREFLUSH;
const blk_opf_t AMF_CONST_REQ_FUA = REQ_FUA;
const blk_status_t AMF_CONST_BLK_STS_OK = BLK_STS_OK;
const blk_status_t AMF_CONST_BLK_STS_IOERR = BLK_STS_IOERR;
const blk_status_t AMF_CONST_BLK_STS_NOTSUPP = BLK_STS_NOTSUPP;
const gfp_t AMF_CONST_GFP_NOIO = GFP_NOIO;
/* An enum constant of uapi linux/in.h, whose other declarations dm-amf does not need. */
const int AMF_CONST_IPPROTO_TCP = IPPROTO_TCP;
