/* Live migration: the sending and the receiving side, both driven by the
 * controller's event loop (the guest runs on meanwhile; the API answers
 * migration-status). docs/ARCHITECTURE.md, "Live migration", has the order
 * of messages and where each dirty bit comes from. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bulkhead/log.h>
#include <bulkhead/util.h>

#include "apiconfig.h"
#include "binder.h"
#include "config.h"
#include "dirty.h"
#include "guestmem.h"
#include "layout.h"
#include "migrate.h"
#include "migurl.h"
#include "migwire.h"
#include "proto/api.pb-c.h"
#include "proto/migration.pb-c.h"
#include "vm.h"

#define PAGE BH_MIG_PAGE_SIZE
/* Pages per MEMORY frame, at most. */
#define RUN_PAGES (BH_MIG_MEMORY_MAX / PAGE)
/* Bytes sent per wake-up of the loop before others get their turn. */
#define SEND_BUDGET (32u << 20)
/* ms a connect may take. */
#define CONNECT_TIMEOUT_MS 10000

enum phase {
	P_IDLE = 0,
	/* sender */
	P_CONNECTING,
	P_START,    /* START sent, its answer awaited */
	P_CONFIG,   /* CONFIG sent, ... */
	P_DIRTY_ON, /* dirty logging being switched on */
	P_MEMORY,   /* a pass of pages going out */
	P_SYNC,	    /* the runner folds KVM's log in */
	P_PAUSING,  /* waiting for every process to pause */
	P_MEMFD,    /* MEMFD sent, its answer awaited */
	P_SAVING,   /* the VM's state being gathered */
	P_STATE,    /* STATE sent, ... */
	P_COMPLETE, /* COMPLETE sent, ... */
	/* receiver */
	R_LISTEN,
	R_START,
	R_CONFIG,
	R_MEMORY,
	R_COMPLETE,
	/* both */
	P_DONE,
	P_FAILED,
};

static const char *const phase_names[] = {
	[P_IDLE] = "none",
	[P_CONNECTING] = "connecting",
	[P_START] = "start",
	[P_CONFIG] = "config",
	[P_DIRTY_ON] = "dirty-logging",
	[P_MEMORY] = "memory",
	[P_SYNC] = "memory",
	[P_PAUSING] = "pausing",
	[P_MEMFD] = "memfd",
	[P_SAVING] = "state",
	[P_STATE] = "state",
	[P_COMPLETE] = "complete",
	[R_LISTEN] = "listening",
	[R_START] = "start",
	[R_CONFIG] = "config",
	[R_MEMORY] = "memory",
	[R_COMPLETE] = "complete",
	[P_DONE] = "done",
	[P_FAILED] = "failed",
};

struct mig {
	bool sender;
	enum phase phase;
	struct bh_vm *vm;
	struct event_base *base;
	bh_migrate_done_fn done;
	void *done_arg;
	int sock;
	int listen_fd;
	char unix_path[128]; /* the receiver's socket file, removed */
	struct event *listen_ev, *rd_ev, *wr_ev, *timer;
	struct bh_mig_reader rd;
	struct bh_mig_out out;
	uint64_t t0_ns, last_io_ns;

	/* sender */
	bool local;
	uint32_t downtime_ms;
	bool was_paused;    /* paused before the migration began */
	bool we_paused;	    /* the migration paused it */
	bool complete_sent; /* after this, the destination may run it */
	bool dirty_on;	    /* asked to start: stopped again at the end */
	bool final;	    /* the last pass, the VM paused */
	int memfd;
	uint64_t ram_size;
	uint64_t npages;
	uint64_t *bitmap; /* the pages this pass sends (not pass 0) */
	size_t nwords;
	uint64_t cursor; /* next page to look at */
	unsigned int pass;
	uint64_t pass_bytes, pass_t0_ns;
	uint64_t pause_ns;
	/* pass 0 reads ahead: a window of RAM and where it starts */
	uint8_t *win;
	uint64_t win_page, win_pages;

	/* receiver */
	bool r_local;
	uint64_t r_ram;
	int r_memfd;
	bool defined;

	struct bh_mig_status st;
};

/* Every fd -1 from the start: release() closes what is >= 0, and fd 0 is
 * the terminal's. */
static struct mig M = {
	.sock = -1,
	.listen_fd = -1,
	.memfd = -1,
	.r_memfd = -1,
	.rd = { .fd = -1 },
	.out = { .fd = -1 },
};
static struct bh_binder *binder;

void bh_migrate_set_binder(struct bh_binder *b)
{
	binder = b;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void set_phase(struct mig *m, enum phase p)
{
	m->phase = p;
	m->st.phase = phase_names[p];
}

bool bh_migrate_active(void)
{
	return M.phase != P_IDLE && M.phase != P_DONE && M.phase != P_FAILED;
}

void bh_migrate_status(struct bh_mig_status *st)
{
	*st = M.st;
	if (!st->phase)
		st->phase = phase_names[P_IDLE];
	if (!st->role)
		st->role = "";
	if (bh_migrate_active() && M.t0_ns)
		st->elapsed_ms = (now_ns() - M.t0_ns) / 1000000;
}

/* Events and sockets go; buffers too. */
static void release(struct mig *m)
{
	if (m->listen_ev)
		event_free(m->listen_ev);
	if (m->rd_ev)
		event_free(m->rd_ev);
	if (m->wr_ev)
		event_free(m->wr_ev);
	if (m->timer)
		event_free(m->timer);
	m->listen_ev = m->rd_ev = m->wr_ev = m->timer = NULL;
	bh_closep(&m->sock);
	bh_closep(&m->listen_fd);
	if (m->unix_path[0]) {
		unlink(m->unix_path);
		m->unix_path[0] = 0;
	}
	bh_closep(&m->r_memfd);
	bh_mig_reader_reset(&m->rd);
	bh_mig_out_free(&m->out);
	free(m->bitmap);
	m->bitmap = NULL;
	free(m->win);
	m->win = NULL;
}

void bh_migrate_cleanup(void)
{
	release(&M);
}

/* A best-effort last word to the other side, which may be gone. */
static void say_last(struct mig *m, unsigned int type, const char *why)
{
	uint8_t buf[BH_MIG_HEADER_SIZE + 600];
	size_t len;

	if (m->sock < 0)
		return;
	if (type == BH_MIG_ABANDON) {
		Bh__MigAbandon a = BH__MIG_ABANDON__INIT;

		a.why = (char *)why;
		len = protobuf_c_message_get_packed_size(&a.base);
		if (len > sizeof(buf) - BH_MIG_HEADER_SIZE)
			return;
		protobuf_c_message_pack(&a.base, buf + BH_MIG_HEADER_SIZE);
	} else {
		Bh__MigResponse r = BH__MIG_RESPONSE__INIT;

		r.ok = false;
		r.error = (char *)why;
		len = protobuf_c_message_get_packed_size(&r.base);
		if (len > sizeof(buf) - BH_MIG_HEADER_SIZE)
			return;
		protobuf_c_message_pack(&r.base, buf + BH_MIG_HEADER_SIZE);
	}
	/* A frame cut in the middle of another is no use: only when nothing
	 * is half sent. */
	if (bh_mig_out_busy(&m->out) && m->out.off > 0)
		return;
	bh_mig_header_encode(buf, type, len);
	(void)send(m->sock, buf, BH_MIG_HEADER_SIZE + len,
		   MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void finish(struct mig *m, int r, const char *why)
{
	bh_migrate_done_fn done = m->done;

	m->done = NULL;
	release(m);
	if (done)
		done(m->done_arg, r, why);
}

/* ---- the sending side --------------------------------------------------- */

/*
 * The migration under way failed (why, formatted): said to the other side
 * as its last frame, logged, and undone on this side. The sending side's
 * VM goes on as it was, resumed if the migration paused it (a pause still
 * under way is undone when it completes), unless COMPLETE was sent; the
 * receiving side keeps nothing of the VM.
 */
static void fail(struct mig *m, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct mig *m, int r, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	if (m->phase == P_DONE || m->phase == P_FAILED)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (m->complete_sent)
		snprintf(why + strlen(why), sizeof(why) - strlen(why),
			 "; COMPLETE was sent, so the destination may run the "
			 "VM: this one stays paused");
	set_phase(m, P_FAILED);
	snprintf(m->st.error, sizeof(m->st.error), "%s", why);
	bh_err("%s failed: %s", m->sender ? "migration" : "incoming migration",
	       why);
	/* Given up: ABANDON; refused by the receiving side: a RESPONSE that
	 * says why. */
	say_last(
	    m, m->sender || r == -ECANCELED ? BH_MIG_ABANDON : BH_MIG_RESPONSE,
	    why);
	if (m->sender) {
		if (m->dirty_on) {
			bh_vm_dirty_stop(m->vm);
			m->dirty_on = false;
		}
		bh_vm_on_gone(m->vm, NULL, NULL);
		if (m->we_paused && !m->complete_sent && bh_vm_paused(m->vm)) {
			bh_vm_resume(m->vm);
			m->we_paused = false;
		}
	} else if (m->defined) {
		bh_vm_delete(m->vm);
		m->defined = false;
	}
	finish(m, r < 0 ? r : -EIO, why);
}

static void pump(struct mig *m);

static void want_write(struct mig *m, bool on)
{
	if (on)
		event_add(m->wr_ev, NULL);
	else
		event_del(m->wr_ev);
}

/* A control frame: msg packed after the header. */
static int send_msg(struct mig *m, unsigned int type,
		    const ProtobufCMessage *msg)
{
	size_t len = msg ? protobuf_c_message_get_packed_size(msg) : 0;
	uint8_t *p = bh_mig_out_frame(&m->out, type, len);

	bh_debug("migration: sending %s (%zu bytes)", bh_mig_type_name(type),
		 len);
	if (!p)
		return -ENOMEM;
	if (msg)
		protobuf_c_message_pack(msg, p);
	pump(m);
	return 0;
}

static bool page_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)(const void *)p;

	for (size_t i = 0; i < PAGE / 8; i++)
		if (w[i])
			return false;
	return true;
}

/* Pass 0: the next run of pages that hold anything, from the window. */
static int next_run_all(struct mig *m, uint64_t *first, uint64_t *count)
{
	for (;;) {
		uint64_t end;

		if (m->cursor >= m->npages)
			return 0;
		if (m->cursor < m->win_page ||
		    m->cursor >= m->win_page + m->win_pages) {
			off_t data = lseek(m->memfd, (off_t)(m->cursor * PAGE),
					   SEEK_DATA);
			size_t want;
			ssize_t n;

			/* Holes were never touched: nothing to send. */
			if (data < 0 && errno == ENXIO) {
				m->cursor = m->npages;
				return 0;
			}
			if (data >= 0 && (uint64_t)data / PAGE > m->cursor)
				m->cursor = (uint64_t)data / PAGE;
			if (m->cursor >= m->npages)
				return 0;
			want = RUN_PAGES;
			if (want > m->npages - m->cursor)
				want = (size_t)(m->npages - m->cursor);
			n = pread(m->memfd, m->win, want * PAGE,
				  (off_t)(m->cursor * PAGE));
			if (n < 0)
				return -errno;
			if ((size_t)n < PAGE)
				return -EIO;
			m->win_page = m->cursor;
			m->win_pages = (uint64_t)n / PAGE;
		}
		end = m->win_page + m->win_pages;
		while (m->cursor < end &&
		       page_zero(m->win + (m->cursor - m->win_page) * PAGE))
			m->cursor++;
		if (m->cursor == end)
			continue;
		*first = m->cursor;
		while (m->cursor < end &&
		       !page_zero(m->win + (m->cursor - m->win_page) * PAGE))
			m->cursor++;
		*count = m->cursor - *first;
		return 1;
	}
}

/* A dirty pass: the next run of pages whose bit is set. */
static int next_run_dirty(struct mig *m, uint64_t *first, uint64_t *count)
{
	uint64_t p = m->cursor;

	while (p < m->npages) {
		uint64_t w = m->bitmap[p / 64] >> (p % 64);

		if (!w) {
			p = (p / 64 + 1) * 64;
			continue;
		}
		p += (uint64_t)__builtin_ctzll(w);
		break;
	}
	if (p >= m->npages) {
		m->cursor = m->npages;
		return 0;
	}
	*first = p;
	while (p < m->npages && p - *first < RUN_PAGES &&
	       (m->bitmap[p / 64] >> (p % 64) & 1))
		p++;
	*count = p - *first;
	m->cursor = p;
	return 1;
}

/* The next MEMORY frame into the writer: 1, 0 at the pass's end, -errno. */
static int next_memory_frame(struct mig *m)
{
	uint64_t first = 0, count = 0;
	uint8_t *p;
	int r;

	r = m->pass == 0 && !m->final ? next_run_all(m, &first, &count)
				      : next_run_dirty(m, &first, &count);
	if (r <= 0)
		return r;
	p = bh_mig_out_frame(&m->out, BH_MIG_MEMORY, 8 + count * PAGE);
	if (!p)
		return -ENOMEM;
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)((first * PAGE) >> (8 * i));
	if (m->pass == 0 && !m->final) {
		memcpy(p + 8, m->win + (first - m->win_page) * PAGE,
		       count * PAGE);
	} else {
		ssize_t n =
		    pread(m->memfd, p + 8, count * PAGE, (off_t)(first * PAGE));

		if (n < 0)
			return -errno;
		if ((uint64_t)n != count * PAGE)
			return -EIO;
	}
	m->st.pages_sent += count;
	/* Progress in the log every 256 MiB of a pass. */
	if (m->pass_bytes >> 28 != (m->pass_bytes + count * PAGE) >> 28)
		bh_info("migration: pass %u: %" PRIu64 " MiB sent", m->pass,
			(m->pass_bytes + count * PAGE) >> 20);
	m->pass_bytes += count * PAGE;
	return 1;
}

static void pass_end(struct mig *m);

/* Sends what the socket takes; in a pass, frame after frame. */
static void pump(struct mig *m)
{
	uint64_t sent0 = m->out.bytes;

	while (m->phase != P_FAILED && m->phase != P_DONE) {
		int r;

		if (bh_mig_out_busy(&m->out)) {
			r = bh_mig_out_send(&m->out, m->sock);
			m->st.bytes_sent = m->out.bytes;
			if (r < 0) {
				fail(m, r, "sending to the destination: %s",
				     strerror(-r));
				return;
			}
			if (r == 0) {
				want_write(m, true);
				return;
			}
			m->last_io_ns = now_ns();
		}
		if (m->phase != P_MEMORY) {
			want_write(m, false);
			return;
		}
		if (m->out.bytes - sent0 >= SEND_BUDGET) {
			/* Others' turn; the write event brings us back. */
			want_write(m, true);
			return;
		}
		r = next_memory_frame(m);
		if (r < 0) {
			fail(m, r, "reading guest RAM: %s", strerror(-r));
			return;
		}
		if (r == 0) {
			want_write(m, false);
			pass_end(m);
			return;
		}
	}
}

static void begin_pass(struct mig *m)
{
	m->cursor = 0;
	m->pass_bytes = 0;
	m->pass_t0_ns = now_ns();
	m->st.pass = m->pass;
	set_phase(m, P_MEMORY);
	if (m->final)
		m->st.phase = "stop-and-copy";
	pump(m);
}

static void on_state(void *arg, const Bh__SnapshotState *st, const char *why)
{
	struct mig *m = arg;
	int r;

	if (m->phase != P_SAVING)
		return;
	if (!st) {
		fail(m, -EIO, "saving the VM's state: %s", why);
		return;
	}
	set_phase(m, P_STATE);
	r = send_msg(m, BH_MIG_STATE, &st->base);
	if (r < 0)
		fail(m, r, "out of memory");
}

static void save_state(struct mig *m)
{
	char err[512];
	int r;

	set_phase(m, P_SAVING);
	r = bh_vm_save_state(m->vm, on_state, m, err, sizeof(err));
	if (r < 0)
		fail(m, r, "saving the VM's state: %s", err);
}

static void on_final_sync(void *arg, int r, const char *why);

static void on_paused(void *arg, int r, const char *why)
{
	struct mig *m = arg;

	if (m->phase != P_PAUSING) {
		/* The migration ended meanwhile: the VM runs on. */
		if (r == 0 && m->we_paused && !m->complete_sent) {
			bh_vm_resume(m->vm);
			m->we_paused = false;
		}
		return;
	}
	if (r < 0) {
		m->we_paused = false;
		fail(m, r, "the VM did not pause: %s", why);
		return;
	}
	m->pause_ns = now_ns();
	if (m->local) {
		set_phase(m, P_MEMFD);
		if (!bh_mig_out_frame(&m->out, BH_MIG_MEMFD, 0)) {
			fail(m, -ENOMEM, "out of memory");
			return;
		}
		m->out.fd = m->memfd;
		pump(m);
		return;
	}
	set_phase(m, P_SYNC);
	r = bh_vm_dirty_sync(m->vm, on_final_sync, m);
	if (r < 0)
		fail(m, r, "cannot read KVM's dirty log: %s", strerror(-r));
}

static void pause_vm(struct mig *m)
{
	int r;

	set_phase(m, P_PAUSING);
	if (bh_vm_paused(m->vm)) {
		on_paused(m, 0, NULL);
		return;
	}
	r = bh_vm_pause_then(m->vm, on_paused, m);
	if (r < 0) {
		fail(m, r, "cannot pause the VM: %s", strerror(-r));
		return;
	}
	m->we_paused = true;
}

static void on_final_sync(void *arg, int r, const char *why)
{
	struct mig *m = arg;
	uint64_t n;

	if (m->phase != P_SYNC)
		return;
	if (r < 0) {
		fail(m, r, "KVM's dirty log: %s", why);
		return;
	}
	/* Onto the pages the last sync found, which are not sent yet. */
	n = bh_vm_dirty_take(m->vm, m->bitmap, m->nwords);
	m->st.pages_dirty = n;
	bh_info("migration: stop-and-copy: %" PRIu64 " pages (%.1f MiB)", n,
		(double)n * PAGE / (1 << 20));
	m->final = true;
	m->pass++;
	begin_pass(m);
}

static void on_sync(void *arg, int r, const char *why)
{
	struct mig *m = arg;
	uint64_t n, est_ms, bps;

	if (m->phase != P_SYNC)
		return;
	if (r < 0) {
		fail(m, r, "KVM's dirty log: %s", why);
		return;
	}
	memset(m->bitmap, 0, m->nwords * 8);
	n = bh_vm_dirty_take(m->vm, m->bitmap, m->nwords);
	m->st.pages_dirty = n;
	bps = m->st.bytes_per_second ? m->st.bytes_per_second : 1;
	est_ms = n * PAGE * 1000 / bps;
	m->st.expected_downtime_ms = est_ms;
	bh_info("migration: %" PRIu64 " pages (%.1f MiB) dirty after pass %u; "
		"expected downtime %" PRIu64 " ms (at most %u)",
		n, (double)n * PAGE / (1 << 20), m->pass, est_ms,
		m->downtime_ms);
	if (est_ms <= m->downtime_ms) {
		pause_vm(m);
		return;
	}
	if (m->pass >= BH_MIG_MAX_PASSES) {
		fail(m, -ETIMEDOUT,
		     "did not converge: after %u dirty passes %" PRIu64
		     " pages (%.1f MiB) were dirty again, an expected "
		     "downtime of %" PRIu64 " ms at %.1f MiB/s, over the %u "
		     "ms accepted (downtime=); the VM runs on here",
		     m->pass, n, (double)n * PAGE / (1 << 20), est_ms,
		     (double)bps / (1 << 20), m->downtime_ms);
		return;
	}
	m->pass++;
	begin_pass(m);
}

/* Every page of the pass is out: how fast, and what next. */
static void pass_end(struct mig *m)
{
	uint64_t dt = now_ns() - m->pass_t0_ns;
	int r;

	if (dt && m->pass_bytes) {
		uint64_t bps = m->pass_bytes * 1000000000ULL / dt;

		/* A pass of a few pages says little of the link. */
		if (m->pass_bytes >= (4u << 20) || !m->st.bytes_per_second)
			m->st.bytes_per_second = bps ? bps : 1;
	}
	bh_info("migration: pass %u: %.1f MiB in %.2f s", m->pass,
		(double)m->pass_bytes / (1 << 20), (double)dt / 1e9);
	if (m->final) {
		save_state(m);
		return;
	}
	set_phase(m, P_SYNC);
	r = bh_vm_dirty_sync(m->vm, on_sync, m);
	if (r < 0)
		fail(m, r, "cannot read KVM's dirty log: %s", strerror(-r));
}

static void on_dirty_on(void *arg, int r, const char *why)
{
	struct mig *m = arg;

	if (m->phase != P_DIRTY_ON)
		return;
	if (r < 0) {
		fail(m, r, "dirty logging did not start: %s", why);
		return;
	}
	m->pass = 0;
	begin_pass(m);
}

/* The destination said yes to what was awaited. */
static void s_advance(struct mig *m)
{
	Bh__MigComplete c = BH__MIG_COMPLETE__INIT;
	int r;

	switch (m->phase) {
	case P_START: {
		Bulkhead__Api__V1__VmConfig *vc = NULL;
		struct bh_config now;

		bh_vm_current_config(m->vm, &now);
		r = bh_apiconfig_to_proto(&now, &vc);
		if (r < 0) {
			fail(m, r, "the configuration: %s", strerror(-r));
			return;
		}
		set_phase(m, P_CONFIG);
		r = send_msg(m, BH_MIG_CONFIG, &vc->base);
		bh_apiconfig_free_proto(vc);
		if (r < 0)
			fail(m, r, "out of memory");
		return;
	}
	case P_CONFIG:
		if (m->local) {
			pause_vm(m);
			return;
		}
		set_phase(m, P_DIRTY_ON);
		r = bh_vm_dirty_start(m->vm, on_dirty_on, m);
		if (r < 0) {
			fail(m, r, "dirty logging did not start: %s",
			     strerror(-r));
			return;
		}
		m->dirty_on = true;
		return;
	case P_MEMFD:
		save_state(m);
		return;
	case P_STATE:
		set_phase(m, P_COMPLETE);
		c.resume = !m->was_paused;
		m->complete_sent = true;
		r = send_msg(m, BH_MIG_COMPLETE, &c.base);
		if (r < 0)
			fail(m, r, "out of memory");
		return;
	case P_COMPLETE:
		m->st.downtime_ms = (now_ns() - m->pause_ns) / 1000000;
		m->st.elapsed_ms = (now_ns() - m->t0_ns) / 1000000;
		set_phase(m, P_DONE);
		bh_info("migration done in %.2f s: %" PRIu64
			" pages (%.1f MiB) "
			"sent in %u passes, downtime %" PRIu64 " ms",
			(double)m->st.elapsed_ms / 1e3, m->st.pages_sent,
			(double)m->st.bytes_sent / (1 << 20), m->pass + 1,
			m->st.downtime_ms);
		if (m->dirty_on) {
			bh_vm_dirty_stop(m->vm);
			m->dirty_on = false;
		}
		bh_vm_on_gone(m->vm, NULL, NULL);
		finish(m, 0, NULL);
		return;
	default:
		fail(m, -EPROTO, "the destination answered in phase %s",
		     phase_names[m->phase]);
		return;
	}
}

/* What the destination said: an answer, or that it gave up. */
static void s_frame(struct mig *m)
{
	const struct bh_mig_header *h = &m->rd.h;

	bh_debug("migration: the destination sent %s (%llu bytes)",
		 bh_mig_type_name(h->type), (unsigned long long)h->length);
	if (h->type == BH_MIG_ABANDON) {
		Bh__MigAbandon *a =
		    bh__mig_abandon__unpack(NULL, h->length, m->rd.body);

		fail(m, -ECONNABORTED, "the destination gave up: %s",
		     a && a->why ? a->why : "(no reason)");
		if (a)
			bh__mig_abandon__free_unpacked(a, NULL);
		return;
	}
	if (h->type != BH_MIG_RESPONSE) {
		fail(m, -EPROTO, "the destination sent a %s message",
		     bh_mig_type_name(h->type));
		return;
	}
	Bh__MigResponse *resp =
	    bh__mig_response__unpack(NULL, h->length, m->rd.body);
	if (!resp) {
		fail(m, -EPROTO, "the destination's answer does not decode");
		return;
	}
	if (!resp->ok) {
		fail(m, -EREMOTEIO, "the destination refused: %s",
		     resp->error && resp->error[0] ? resp->error
						   : "(no reason)");
		bh__mig_response__free_unpacked(resp, NULL);
		return;
	}
	bh__mig_response__free_unpacked(resp, NULL);
	switch (m->phase) {
	case P_START:
	case P_CONFIG:
	case P_MEMFD:
	case P_STATE:
	case P_COMPLETE:
		/* Awaited only once the frame is all out. */
		if (bh_mig_out_busy(&m->out)) {
			fail(m, -EPROTO, "the destination answered early");
			return;
		}
		s_advance(m);
		return;
	default:
		fail(m, -EPROTO, "the destination answered unasked");
	}
}

static void s_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct mig *m = arg;
	char err[256];

	for (int i = 0; i < 16 && m->phase != P_FAILED && m->phase != P_DONE;
	     i++) {
		int r = bh_mig_read(&m->rd, m->sock, err, sizeof(err));

		if (r == 0)
			return;
		if (r < 0) {
			fail(m, r, "the destination: %s", err);
			return;
		}
		m->last_io_ns = now_ns();
		s_frame(m);
		bh_mig_reader_next(&m->rd);
	}
}

static void s_on_write(evutil_socket_t fd, short what, void *arg)
{
	pump(arg);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct mig *m = arg;
	uint64_t idle = (now_ns() - m->last_io_ns) / 1000000;

	/* Quiet on our side too (a pause, a sync, a boot) is not the
	 * peer's silence: only waits on the socket count. */
	bool waiting =
	    m->sender ? (m->phase == P_START || m->phase == P_CONFIG ||
			 m->phase == P_MEMFD || m->phase == P_STATE ||
			 m->phase == P_COMPLETE || bh_mig_out_busy(&m->out))
		      : (m->phase != R_LISTEN);

	if (!waiting || idle < BH_MIG_IO_TIMEOUT_MS) {
		if (!waiting)
			m->last_io_ns = now_ns();
		return;
	}
	fail(m, -ETIMEDOUT, "%s for %u s",
	     m->sender ? "the destination sent nor took anything"
		       : "the source sent nothing",
	     BH_MIG_IO_TIMEOUT_MS / 1000);
}

static int start_events(struct mig *m, event_callback_fn rd,
			event_callback_fn wr)
{
	struct timeval tv = { 1, 0 };

	m->rd_ev = event_new(m->base, m->sock, EV_READ | EV_PERSIST, rd, m);
	m->wr_ev =
	    wr ? event_new(m->base, m->sock, EV_WRITE | EV_PERSIST, wr, m)
	       : NULL;
	if (!m->timer)
		m->timer = event_new(m->base, -1, EV_PERSIST, on_timer, m);
	if (!m->rd_ev || (wr && !m->wr_ev) || !m->timer ||
	    event_add(m->rd_ev, NULL) < 0 || event_add(m->timer, &tv) < 0)
		return -ENOMEM;
	m->last_io_ns = now_ns();
	return 0;
}

static void s_on_gone(void *arg)
{
	struct mig *m = arg;

	fail(m, -ECANCELED, "the VM stopped or rebooted here");
}

static void reset_status(struct mig *m, const char *role)
{
	memset(&m->st, 0, sizeof(m->st));
	m->st.role = role;
	m->t0_ns = now_ns();
}

int bh_migrate_send(struct bh_vm *vm, struct event_base *base,
		    const struct bh_mig_send_opts *o, bh_migrate_done_fn done,
		    void *arg, char *err, size_t errlen)
{
	Bh__MigStart s = BH__MIG_START__INIT;
	struct bh_migurl url;
	struct mig *m = &M;
	int r;

	if (bh_migrate_active())
		return bh_errf(err, errlen, "a migration is under way");
	if (o->downtime_ms > BH_MIG_MAX_DOWNTIME_MS)
		return bh_errf(err, errlen, "downtime=%u: at most %u ms",
			       o->downtime_ms, BH_MIG_MAX_DOWNTIME_MS);
	r = bh_migurl_parse(o->url, BH_MIGURL_SEND, &url, err, errlen);
	if (r < 0)
		return r;
	if (o->local && url.kind != BH_MIGURL_UNIX)
		return bh_errf(err, errlen,
			       "local=on passes guest RAM as an fd: it needs "
			       "a unix: URL");
	if (bh_vm_memfd(vm) < 0)
		return bh_errf(err, errlen, "the VM is not running");
	/* What the state cannot carry, refused before anything is sent. */
	r = bh_vm_check_savable(vm, "the destination", err, errlen);
	if (r < 0)
		return r;
	release(m);
	m->sender = true;
	m->vm = vm;
	m->base = base;
	m->local = o->local;
	m->downtime_ms =
	    o->downtime_ms ? o->downtime_ms : BH_MIG_DEFAULT_DOWNTIME_MS;
	m->was_paused = bh_vm_paused(vm);
	m->we_paused = m->complete_sent = m->dirty_on = m->final = false;
	m->memfd = bh_vm_memfd(vm);
	m->ram_size = bh_vm_ram_size(vm);
	m->npages = m->ram_size / PAGE;
	m->nwords = (size_t)((m->npages + 63) / 64);
	m->pass = 0;
	m->win_page = m->win_pages = 0;
	reset_status(m, "send");
	m->st.local = o->local;
	m->st.downtime_limit_ms = m->downtime_ms;
	bh_mig_reader_init(&m->rd);
	bh_mig_out_init(&m->out);
	/* The pages to send and pass 0's window: copying only. */
	if (!o->local) {
		m->bitmap = calloc(m->nwords ? m->nwords : 1, 8);
		m->win = malloc(BH_MIG_MEMORY_MAX);
	}
	if (!o->local && (!m->bitmap || !m->win)) {
		release(m);
		return bh_errf(err, errlen, "out of memory");
	}
	set_phase(m, P_CONNECTING);
	r = bh_migurl_connect(binder, &url, CONNECT_TIMEOUT_MS, &m->sock, err,
			      errlen);
	if (r < 0) {
		set_phase(m, P_FAILED);
		snprintf(m->st.error, sizeof(m->st.error), "%s", err);
		release(m);
		return r;
	}
	r = start_events(m, s_on_read, s_on_write);
	if (r < 0) {
		set_phase(m, P_FAILED);
		release(m);
		return bh_errf(err, errlen, "out of memory");
	}
	m->done = done;
	m->done_arg = arg;
	bh_vm_on_gone(vm, s_on_gone, m);
	bh_info("migration to %s: %" PRIu64 " MiB of guest RAM%s, downtime "
		"at most %u ms",
		o->url, m->ram_size >> 20,
		o->local ? " passed as its memfd" : "", m->downtime_ms);
	s.version = BH_MIG_VERSION;
	s.local = o->local;
	s.ram_size = m->ram_size;
	s.page_size = PAGE;
	set_phase(m, P_START);
	r = send_msg(m, BH_MIG_START, &s.base);
	if (r < 0) {
		m->done = NULL;
		fail(m, r, "out of memory");
		return bh_errf(err, errlen, "out of memory");
	}
	return 0;
}

/* ---- the receiving side ------------------------------------------------- */

/* A small answer; the sender reads all the time, so the socket has room. */
static int r_answer(struct mig *m)
{
	Bh__MigResponse resp = BH__MIG_RESPONSE__INIT;
	uint8_t buf[BH_MIG_HEADER_SIZE + 16];
	size_t len, off = 0;
	uint64_t deadline = now_ns() + 10ULL * 1000000000ULL;

	resp.ok = true;
	len = protobuf_c_message_get_packed_size(&resp.base);
	protobuf_c_message_pack(&resp.base, buf + BH_MIG_HEADER_SIZE);
	bh_mig_header_encode(buf, BH_MIG_RESPONSE, len);
	len += BH_MIG_HEADER_SIZE;
	while (off < len) {
		ssize_t n = send(m->sock, buf + off, len - off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EINTR) &&
		    now_ns() < deadline) {
			struct timespec ts = { 0, 1000000 };

			nanosleep(&ts, NULL);
			continue;
		}
		if (n < 0)
			return -errno;
		off += (size_t)n;
	}
	return 0;
}

static void r_start(struct mig *m)
{
	Bh__MigStart *s =
	    bh__mig_start__unpack(NULL, m->rd.h.length, m->rd.body);

	if (!s) {
		fail(m, -EBADMSG, "START does not decode");
		return;
	}
	if (s->version != BH_MIG_VERSION || s->page_size != PAGE ||
	    s->ram_size == 0 || s->ram_size % PAGE) {
		fail(m, -EPROTO,
		     "START: version %u, pages of %u bytes, %" PRIu64
		     " bytes of RAM; this bulkhead speaks version %u with "
		     "pages of %u bytes",
		     s->version, s->page_size, s->ram_size, BH_MIG_VERSION,
		     PAGE);
		bh__mig_start__free_unpacked(s, NULL);
		return;
	}
	m->r_local = s->local;
	m->r_ram = s->ram_size;
	m->st.local = s->local;
	bh__mig_start__free_unpacked(s, NULL);
	set_phase(m, R_CONFIG);
	if (r_answer(m) < 0)
		fail(m, -EPIPE, "cannot answer the source");
}

static void r_config(struct mig *m)
{
	Bulkhead__Api__V1__VmConfig *vc;
	struct bh_mem_layout layout;
	struct bh_guest_mem gm;
	struct bh_config *cfg;
	char err[512];
	int r;

	vc = bulkhead__api__v1__vm_config__unpack(NULL, m->rd.h.length,
						  m->rd.body);
	if (!vc) {
		fail(m, -EBADMSG, "CONFIG is not a VM configuration");
		return;
	}
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		abort();
	r = bh_apiconfig_from_proto(vc, cfg, err, sizeof(err));
	bulkhead__api__v1__vm_config__free_unpacked(vc, NULL);
	if (r < 0) {
		free(cfg);
		fail(m, r, "the configuration: %s", err);
		return;
	}
	if (cfg->memory != m->r_ram) {
		fail(m, -EINVAL,
		     "the configuration has %" PRIu64
		     " bytes of RAM, START said %" PRIu64,
		     cfg->memory, m->r_ram);
		bh_config_free(cfg);
		free(cfg);
		return;
	}
	for (unsigned int i = 0; i < cfg->nnets; i++)
		if (cfg->nets[i].ip) {
			fail(m, -EINVAL,
			     "%s sets the TAP's address (ip=), which only "
			     "start-up can: give the destination a TAP "
			     "made beforehand",
			     cfg->nets[i].id);
			bh_config_free(cfg);
			free(cfg);
			return;
		}
	/* Every backend opened and checked now, before any memory comes:
	 * a missing disk is refused here. */
	r = bh_vm_define(m->vm, cfg, err, sizeof(err));
	free(cfg);
	if (r < 0) {
		fail(m, r, "%s", err);
		return;
	}
	m->defined = true;
	if (!m->r_local) {
		r = bh_layout_compute(m->r_ram, &layout);
		if (r == 0)
			r = bh_guest_mem_create(&gm, &layout);
		if (r < 0) {
			fail(m, r,
			     "cannot make %" PRIu64 " MiB of guest RAM: %s",
			     m->r_ram >> 20, strerror(-r));
			return;
		}
		bh_guest_mem_unmap(&gm);
		m->r_memfd = gm.memfd;
	}
	set_phase(m, R_MEMORY);
	if (r_answer(m) < 0)
		fail(m, -EPIPE, "cannot answer the source");
}

static void r_memfd(struct mig *m)
{
	int r;

	if (!m->r_local || m->r_memfd >= 0) {
		fail(m, -EPROTO, "an unexpected MEMFD (local=%s)",
		     m->r_local ? "on" : "off");
		return;
	}
	r = bh_guest_mem_check_fd(m->rd.fd, m->r_ram);
	if (r < 0) {
		fail(m, r,
		     "the fd sent as guest RAM is not a memfd of %" PRIu64
		     " bytes sealed against shrinking and growing",
		     m->r_ram);
		return;
	}
	m->r_memfd = m->rd.fd;
	m->rd.fd = -1;
	if (r_answer(m) < 0)
		fail(m, -EPIPE, "cannot answer the source");
}

static void r_memory(struct mig *m)
{
	const uint8_t *data;
	uint64_t off;
	size_t len, done = 0;
	char err[256];
	int r;

	if (m->r_local) {
		fail(m, -EPROTO, "MEMORY in a local migration");
		return;
	}
	r = bh_mig_memory_check(m->rd.body, m->rd.h.length, m->r_ram, &off,
				&data, &len, err, sizeof(err));
	if (r < 0) {
		fail(m, r, "%s", err);
		return;
	}
	while (done < len) {
		ssize_t n = pwrite(m->r_memfd, data + done, len - done,
				   (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fail(m, n < 0 ? -errno : -EIO, "writing guest RAM: %s",
			     n < 0 ? strerror(errno) : "short write");
			return;
		}
		done += (size_t)n;
	}
	/* Progress in the log every 256 MiB received. */
	if ((m->st.pages_sent * PAGE) >> 28 !=
	    ((m->st.pages_sent + len / PAGE) * PAGE) >> 28)
		bh_info("incoming migration: %" PRIu64 " MiB of guest RAM "
			"received",
			((m->st.pages_sent + len / PAGE) * PAGE) >> 20);
	m->st.pages_sent += len / PAGE;
	m->st.bytes_sent = m->rd.bytes;
}

static void r_state(struct mig *m)
{
	Bh__SnapshotState *st;
	char err[512];
	int r;

	if (m->r_memfd < 0) {
		fail(m, -EPROTO, "STATE before guest RAM (MEMFD)");
		return;
	}
	st = bh__snapshot_state__unpack(NULL, m->rd.h.length, m->rd.body);
	if (!st) {
		fail(m, -EBADMSG, "STATE is not a saved VM state");
		return;
	}
	r = bh_vm_set_incoming(m->vm, st, m->r_memfd, err, sizeof(err));
	m->r_memfd = -1;
	if (r < 0) {
		fail(m, r, "STATE: %s", err);
		return;
	}
	set_phase(m, R_COMPLETE);
	if (r_answer(m) < 0)
		fail(m, -EPIPE, "cannot answer the source");
}

static void r_complete(struct mig *m)
{
	Bh__MigComplete *c =
	    bh__mig_complete__unpack(NULL, m->rd.h.length, m->rd.body);
	bool resume;
	int r;

	if (!c) {
		fail(m, -EBADMSG, "COMPLETE does not decode");
		return;
	}
	resume = c->resume;
	bh__mig_complete__free_unpacked(c, NULL);
	r = bh_vm_boot(m->vm);
	if (r < 0) {
		fail(m, r, "the VM did not start here (see bulkhead's log)");
		return;
	}
	if (r_answer(m) < 0) {
		/* The source cannot know the VM runs here: it stays paused
		 * there, and so does this one. */
		bh_warn("migration: the source did not take the last answer; "
			"the VM stays paused here");
		resume = false;
	}
	if (resume && bh_vm_resume(m->vm) < 0)
		bh_warn("migration: the VM did not resume");
	m->defined = false;
	m->st.elapsed_ms = (now_ns() - m->t0_ns) / 1000000;
	set_phase(m, P_DONE);
	bh_info("incoming migration done in %.2f s: %" PRIu64
		" pages received; the VM %s",
		(double)m->st.elapsed_ms / 1e3, m->st.pages_sent,
		resume ? "runs" : "is paused, as it was");
	finish(m, 0, NULL);
}

static void r_frame(struct mig *m)
{
	unsigned int t = m->rd.h.type;

	if (t != BH_MIG_MEMORY)
		bh_debug("incoming migration: %s (%llu bytes)",
			 bh_mig_type_name(t),
			 (unsigned long long)m->rd.h.length);
	if (t == BH_MIG_ABANDON) {
		Bh__MigAbandon *a =
		    bh__mig_abandon__unpack(NULL, m->rd.h.length, m->rd.body);

		fail(m, -ECONNABORTED, "the source gave up: %s",
		     a && a->why ? a->why : "(no reason)");
		if (a)
			bh__mig_abandon__free_unpacked(a, NULL);
		return;
	}
	switch (m->phase) {
	case R_START:
		if (t == BH_MIG_START) {
			r_start(m);
			return;
		}
		break;
	case R_CONFIG:
		if (t == BH_MIG_CONFIG) {
			r_config(m);
			return;
		}
		break;
	case R_MEMORY:
		if (t == BH_MIG_MEMORY) {
			r_memory(m);
			return;
		}
		if (t == BH_MIG_MEMFD) {
			r_memfd(m);
			return;
		}
		if (t == BH_MIG_STATE) {
			r_state(m);
			return;
		}
		break;
	case R_COMPLETE:
		if (t == BH_MIG_COMPLETE) {
			r_complete(m);
			return;
		}
		break;
	default:
		break;
	}
	fail(m, -EPROTO, "a %s message in phase %s", bh_mig_type_name(t),
	     phase_names[m->phase]);
}

static void r_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct mig *m = arg;
	char err[256];

	for (int i = 0; i < 64 && m->phase != P_FAILED && m->phase != P_DONE;
	     i++) {
		int r = bh_mig_read(&m->rd, m->sock, err, sizeof(err));

		if (r == 0)
			return;
		if (r < 0) {
			fail(m, r, "the source, in phase %s: %s",
			     phase_names[m->phase], err);
			return;
		}
		m->last_io_ns = now_ns();
		r_frame(m);
		bh_mig_reader_next(&m->rd);
	}
}

static void r_on_accept(evutil_socket_t fd, short what, void *arg)
{
	struct mig *m = arg;
	int s = accept4(m->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (s < 0) {
		if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
			return;
		fail(m, -errno, "accepting the source: %s", strerror(errno));
		return;
	}
	/* One source only: the listener goes at once. */
	/* (freed with the rest: this is its callback) */
	event_del(m->listen_ev);
	bh_closep(&m->listen_fd);
	if (m->unix_path[0]) {
		unlink(m->unix_path);
		m->unix_path[0] = 0;
	}
	m->sock = s;
	if (start_events(m, r_on_read, NULL) < 0) {
		fail(m, -ENOMEM, "out of memory");
		return;
	}
	m->t0_ns = now_ns();
	set_phase(m, R_START);
	bh_info("incoming migration: the source connected");
	/* What came with the connection already. */
	r_on_read(m->sock, EV_READ, m);
}

int bh_migrate_receive(struct bh_vm *vm, struct event_base *base,
		       const char *url, bh_migrate_done_fn done, void *arg,
		       char *err, size_t errlen)
{
	struct bh_migurl u;
	struct mig *m = &M;
	struct timeval tv = { 1, 0 };
	int port = 0;
	int r;

	if (bh_migrate_active())
		return bh_errf(err, errlen, "a migration is under way");
	r = bh_migurl_parse(url, BH_MIGURL_RECEIVE, &u, err, errlen);
	if (r < 0)
		return r;
	release(m);
	m->sender = false;
	m->complete_sent = false;
	m->vm = vm;
	m->base = base;
	m->defined = false;
	m->r_local = false;
	m->r_ram = 0;
	reset_status(m, "receive");
	bh_mig_reader_init(&m->rd);
	bh_mig_out_init(&m->out);
	r = bh_migurl_open_listen(binder, &u, &m->listen_fd, &port, err,
				  errlen);
	if (r < 0)
		return r;
	if (u.kind == BH_MIGURL_UNIX)
		snprintf(m->unix_path, sizeof(m->unix_path), "%s", u.path);
	m->listen_ev =
	    event_new(base, m->listen_fd, EV_READ | EV_PERSIST, r_on_accept, m);
	m->timer = event_new(base, -1, EV_PERSIST, on_timer, m);
	if (!m->listen_ev || !m->timer || event_add(m->listen_ev, NULL) < 0 ||
	    event_add(m->timer, &tv) < 0) {
		release(m);
		return bh_errf(err, errlen, "out of memory");
	}
	m->last_io_ns = now_ns();
	m->done = done;
	m->done_arg = arg;
	set_phase(m, R_LISTEN);
	if (u.kind == BH_MIGURL_TCP)
		bh_info("incoming migration: listening on %s (port %d)", url,
			port);
	else
		bh_info("incoming migration: listening on %s", url);
	return 0;
}

int bh_migrate_abandon(const char *why)
{
	struct mig *m = &M;

	if (!bh_migrate_active())
		return -ENOENT;
	fail(m, -ECANCELED, "%s", why);
	return 0;
}
