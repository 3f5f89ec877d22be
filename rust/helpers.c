// SPDX-License-Identifier: GPL-2.0
/* Thin wrappers of static inlines for dm-amf's Rust code; see helpers.h. */

#include "helpers.h"

void amf_bio_set_dev(struct bio *bio, struct block_device *bdev)
{
	bio_set_dev(bio, bdev);
}

enum req_op amf_bio_op(const struct bio *bio)
{
	return bio_op(bio);
}

sector_t amf_bdev_nr_sectors(struct block_device *bdev)
{
	return bdev_nr_sectors(bdev);
}

void amf_bio_io_error(struct bio *bio)
{
	bio_io_error(bio);
}

struct page *amf_virt_to_page(const void *addr)
{
	return virt_to_page(addr);
}

void amf_bio_advance_iter(const struct bio *bio, struct bvec_iter *iter, unsigned int bytes)
{
	bio_advance_iter(bio, iter, bytes);
}

void amf_init_completion(struct completion *x)
{
	init_completion(x);
}

void amf_reinit_completion(struct completion *x)
{
	reinit_completion(x);
}

unsigned int amf_memalloc_noio_save(void)
{
	return memalloc_noio_save();
}

void amf_memalloc_noio_restore(unsigned int flags)
{
	memalloc_noio_restore(flags);
}

void amf_sk_set_allocation(struct sock *sk, gfp_t gfp)
{
	sk->sk_allocation = gfp;
}

void amf_sk_set_use_task_frag(struct sock *sk, bool use)
{
	sk->sk_use_task_frag = use;
}

/* WRITE_ONCE as in sock_set_timeout(): a blocked sender or receiver may read it. */
void amf_sk_set_sndtimeo(struct sock *sk, long timeo)
{
	WRITE_ONCE(sk->sk_sndtimeo, timeo);
}

void amf_sk_set_rcvtimeo(struct sock *sk, long timeo)
{
	WRITE_ONCE(sk->sk_rcvtimeo, timeo);
}

/*
 * SHASH_DESC_ON_STACK is a macro that only C can expand: one digest of the concatenated
 * parts on a private descriptor (so one keyed tfm serves any number of threads), which is
 * wiped afterwards because it holds key-derived state.
 */
int amf_hmac_parts(struct crypto_shash *tfm, const struct kvec *parts, unsigned int n, u8 *out)
{
	SHASH_DESC_ON_STACK(desc, tfm);
	unsigned int i;
	int err;

	desc->tfm = tfm;
	err = crypto_shash_init(desc);
	for (i = 0; !err && i < n; i++)
		err = crypto_shash_update(desc, parts[i].iov_base, parts[i].iov_len);
	if (!err)
		err = crypto_shash_final(desc, out);
	shash_desc_zero(desc);
	return err;
}

unsigned int amf_crypto_shash_digestsize(struct crypto_shash *tfm)
{
	return crypto_shash_digestsize(tfm);
}

void amf_crypto_free_shash(struct crypto_shash *tfm)
{
	crypto_free_shash(tfm);
}

int amf_crypto_memneq(const void *a, const void *b, size_t size)
{
	return crypto_memneq(a, b, size);
}

struct user_key_payload *amf_user_key_payload_locked(const struct key *key)
{
	return user_key_payload_locked(key);
}

void amf_memzero_explicit(void *s, size_t count)
{
	memzero_explicit(s, count);
}
