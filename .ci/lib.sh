# Shared by .ci/run (CI) and `make bench`: make sure the services the tests
# and benchmarks use are installed and running. Source it; it defines
# functions only. Installing packages and starting MariaDB need root (or
# sudo). The MariaDB tests connect as root without a password over TCP at
# 127.0.0.1:3306; on a server that only lets root in over its socket (a
# fresh install), ensure_mariadb --allow-root-tcp allows that. Meant for throwaway CI
# machines and dev boxes.

MYSQL_HOST=127.0.0.1
MYSQL_PORT=3306

log() { printf '%s: %s\n' "${CI_LOG_NAME:-.ci}" "$*" >&2; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		log "need root (or sudo) to run: $*"
		exit 1
	fi
}

apt_updated=
apt_install() {
	if [ -z "$apt_updated" ]; then
		log "apt-get update"
		as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
		apt_updated=1
	fi
	log "apt-get install $*"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

mysql_ping() {
	mysqladmin --user=root --host="$MYSQL_HOST" --port="$MYSQL_PORT" --connect-timeout=2 ping >/dev/null 2>&1
}

mariadbd_path() {
	local p
	for p in /usr/sbin/mariadbd /usr/sbin/mysqld; do
		if [ -x "$p" ]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

start_mariadb() {
	local daemon
	if ! daemon="$(mariadbd_path)"; then
		apt_install mariadb-server mariadb-client
		# The package may have started it (where services can start).
		if mysql_ping; then
			return 0
		fi
		daemon="$(mariadbd_path)"
	fi
	log "starting $daemon"
	# Runtime and log directories owned by the server's user; a data
	# directory is initialised on first use.
	as_root install -d -o mysql -g mysql -m 0755 /run/mysqld /var/log/mysql
	if [ ! -d /var/lib/mysql/mysql ]; then
		log "initialising /var/lib/mysql"
		as_root mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db >/dev/null
	fi
	# Started as root, mariadbd switches to the mysql user (--user).
	as_root start-stop-daemon --start --oknodo --background --exec "$daemon" -- --user=mysql
	local i
	for i in $(seq 1 60); do
		if mysql_ping; then
			log "MariaDB answers after ${i}s"
			return 0
		fi
		sleep 1
	done
	log "MariaDB did not answer on $MYSQL_HOST:$MYSQL_PORT within 60s; last lines of its log:"
	as_root tail -n 30 /var/log/mysql/error.log >&2 || true
	exit 1
}

# ensure_mariadb installs and starts MariaDB when needed. With
# --allow-root-tcp (CI) it also lets root in over TCP without a password
# when it cannot yet; without it, that case is an error (on a developer's
# machine it could wipe a root password someone set).
ensure_mariadb() {
	local allow_root_tcp=
	[ "${1:-}" = "--allow-root-tcp" ] && allow_root_tcp=1
	if ! command -v mysqladmin >/dev/null 2>&1; then
		apt_install mariadb-server mariadb-client
	fi
	if mysql_ping; then
		log "MariaDB is running"
	else
		start_mariadb
	fi
	# A fresh MariaDB lets root in only over its Unix socket (unix_socket
	# authentication); the tests connect over TCP without a password.
	if ! mysql --user=root --host="$MYSQL_HOST" --port="$MYSQL_PORT" -e 'SELECT 1' >/dev/null 2>&1; then
		if [ -z "$allow_root_tcp" ]; then
			log "MariaDB does not let root in over TCP without a password; not changing that here (.ci/run does, on CI machines)"
			return 1
		fi
		log "allowing root over TCP without a password (test server only)"
		as_root mysql --user=root --protocol=socket -e "
			ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket;
			CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket;
			GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
			FLUSH PRIVILEGES;"
	fi
}

# fresh_database NAME drops and creates database NAME and prints its DSN.
fresh_database() {
	local name="$1"
	mysql --user=root --host="$MYSQL_HOST" --port="$MYSQL_PORT" \
		-e "DROP DATABASE IF EXISTS \`$name\`; CREATE DATABASE \`$name\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;"
	printf 'root@tcp(%s:%s)/%s\n' "$MYSQL_HOST" "$MYSQL_PORT" "$name"
}

# ensure_openssh installs the OpenSSH client and server when missing and
# creates sshd's privilege separation directory.
ensure_openssh() {
	local missing=()
	command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
	{ command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ]; } || missing+=(openssh-server)
	if [ "${#missing[@]}" -gt 0 ]; then
		apt_install "${missing[@]}"
	fi
	# sshd wants its privilege separation directory, which the package
	# creates at boot (or when its service starts) only.
	[ -d /run/sshd ] || as_root install -d -m 0755 /run/sshd
}

# ensure_chromium installs Chromium (and a font) when missing.
ensure_chromium() {
	if [ ! -x /usr/bin/chromium ]; then
		apt_install chromium fonts-dejavu-core
	fi
}

# ensure_tools installs the command-line tools of the curl walkthrough
# (examples/curl-enroll.sh, run by internal/e2e), tmux (the 80-column
# console tests of internal/e2e) and ssh-audit (the algorithm test of
# internal/tunnel) when missing.
ensure_tools() {
	local missing=()
	command -v tmux >/dev/null 2>&1 || missing+=(tmux)
	command -v curl >/dev/null 2>&1 || missing+=(curl)
	command -v jq >/dev/null 2>&1 || missing+=(jq)
	command -v openssl >/dev/null 2>&1 || missing+=(openssl)
	command -v xxd >/dev/null 2>&1 || missing+=(xxd)
	# internal/tunnel asserts the public port's SSH algorithms with it
	command -v ssh-audit >/dev/null 2>&1 || missing+=(ssh-audit)
	if [ "${#missing[@]}" -gt 0 ]; then
		apt_install "${missing[@]}"
	fi
}
