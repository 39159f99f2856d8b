/* sd_notify without libsystemd: a datagram to $NOTIFY_SOCKET. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sdnotify.h"

/* Fills *sun from $NOTIFY_SOCKET's value; *lenp is the address length. */
static int notify_address(const char *name, struct sockaddr_un *sun,
			  socklen_t *lenp)
{
	size_t len = strlen(name);

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (name[0] == '@') {
		/* Abstract: a leading NUL, and the length counts exactly the
		 * name's bytes (no terminating NUL). */
		if (len < 2 || len > sizeof(sun->sun_path))
			return -EINVAL;
		memcpy(sun->sun_path + 1, name + 1, len - 1);
		*lenp =
		    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
		return 0;
	}
	if (name[0] != '/' || len >= sizeof(sun->sun_path))
		return -EINVAL;
	memcpy(sun->sun_path, name, len);
	*lenp = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
	return 0;
}

int bh_sdnotify(const char *state)
{
	const char *name = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	struct iovec iov;
	struct msghdr msg;
	socklen_t len;
	ssize_t n;
	int fd, r;

	if (!name || !name[0])
		return 0;
	if (!state || !state[0])
		return -EINVAL;
	r = notify_address(name, &sun, &len);
	if (r < 0)
		return r;

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	iov.iov_base = (void *)state;
	iov.iov_len = strlen(state);
	memset(&msg, 0, sizeof(msg));
	msg.msg_name = &sun;
	msg.msg_namelen = len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	/* A datagram socket sends all of it or nothing. */
	n = sendmsg(fd, &msg, MSG_NOSIGNAL);
	r = n < 0 ? -errno : 0;
	close(fd);
	return r;
}
