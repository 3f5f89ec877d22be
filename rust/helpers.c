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
