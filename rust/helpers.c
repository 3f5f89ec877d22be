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
