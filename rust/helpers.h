/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Thin C wrappers for the static inline functions and macros that dm-amf's Rust code
 * calls. Nothing here has logic of its own: each wrapper is one call or one field access.
 */
#ifndef DM_AMF_RUST_HELPERS_H
#define DM_AMF_RUST_HELPERS_H

#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/device-mapper.h>
#include <linux/completion.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/string.h>
#include <crypto/hash.h>
#include <crypto/utils.h>
#include <keys/user-type.h>
#include <net/sock.h>

void amf_bio_set_dev(struct bio *bio, struct block_device *bdev);
enum req_op amf_bio_op(const struct bio *bio);
sector_t amf_bdev_nr_sectors(struct block_device *bdev);
void amf_bio_io_error(struct bio *bio);
struct page *amf_virt_to_page(const void *addr);
void amf_bio_advance_iter(const struct bio *bio, struct bvec_iter *iter, unsigned int bytes);
void amf_init_completion(struct completion *x);
void amf_reinit_completion(struct completion *x);
unsigned int amf_memalloc_noio_save(void);
void amf_memalloc_noio_restore(unsigned int flags);

/* net.rs: struct sock is opaque to the kernel crate's bindings. */
void amf_sk_set_allocation(struct sock *sk, gfp_t gfp);
void amf_sk_set_use_task_frag(struct sock *sk, bool use);
void amf_sk_set_sndtimeo(struct sock *sk, long timeo);
void amf_sk_set_rcvtimeo(struct sock *sk, long timeo);

/* crypto.rs */
int amf_hmac_parts(struct crypto_shash *tfm, const struct kvec *parts, unsigned int n, u8 *out);
unsigned int amf_crypto_shash_digestsize(struct crypto_shash *tfm);
void amf_crypto_free_shash(struct crypto_shash *tfm);
int amf_crypto_memneq(const void *a, const void *b, size_t size);

/* keyring.rs */
struct user_key_payload *amf_user_key_payload_locked(const struct key *key);
void amf_memzero_explicit(void *s, size_t count);

#endif /* DM_AMF_RUST_HELPERS_H */
