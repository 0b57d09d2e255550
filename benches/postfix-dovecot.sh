#!/usr/bin/env bash
# A private Postfix + Dovecot pair on loopback for a side-by-side run of
# posthorn-bench (benches/run.sh --compare). Needs the Debian packages postfix,
# dovecot-imapd, dovecot-pop3d and dovecot-lmtpd (installed, not configured: the
# system instances stay off); everything lives in DIR, nothing starts at boot.
#
#   benches/postfix-dovecot.sh start DIR PORT_BASE DOMAIN PASSWORD ACCOUNTS
#   benches/postfix-dovecot.sh drain DIR     # wait until Postfix's queue is empty
#   benches/postfix-dovecot.sh stop DIR
#
# Postfix listens on PORT_BASE+25 and hands every message to Dovecot over LMTP;
# Dovecot serves IMAP on PORT_BASE+143 and POP3 on PORT_BASE+110 from Maildirs.
# Accounts bench0..bench{ACCOUNTS-1}@DOMAIN, passwords hashed with argon2id at
# posthorn's parameters (`posthorn-bench hash-password`; $BENCH names the binary). Both keep their defaults otherwise
# (Postfix fsyncs its queue file before 250, Dovecot fsyncs delivered mail).
set -euo pipefail

cmd=${1:-}
DIR=${2:?usage: $0 start|drain|stop DIR ...}

start() {
    local base=$1 domain=$2 password=$3 accounts=$4
    local smtp=$((base + 25)) imap=$((base + 143)) pop3=$((base + 110))
    mkdir -p "$DIR"/{postfix,spool,data,dovecot/run,dovecot/state,mail}
    DIR=$(realpath "$DIR")
    # The postfix and mail users must reach their directories.
    chmod 755 "$DIR"
    if ! su -s /bin/sh -c "test -x '$DIR'" nobody; then
        echo "$DIR is not reachable by other users" >&2
        return 1
    fi

    # Dovecot's IDLE push needs an inotify instance per IMAP process, all under one
    # uid here: raise the per-user limit (128) for thousands of idle sessions while
    # the pair runs; `stop` puts the old value back.
    local limit=/proc/sys/fs/inotify/max_user_instances
    if [ -w "$limit" ] && [ "$(cat "$limit")" -lt 8192 ]; then
        cat "$limit" >"$DIR/inotify-instances.saved"
        echo 8192 >"$limit"
    fi

    # Dovecot
    local hash recipients=""
    # posthorn's argon2id parameters (Dovecot's default costs about 5 times more).
    hash="{ARGON2ID}$("${BENCH:-posthorn-bench}" hash-password "$password")"
    : >"$DIR/dovecot/users"
    for n in $(seq 0 $((accounts - 1))); do
        echo "bench$n@$domain:$hash" >>"$DIR/dovecot/users"
        recipients="$recipients bench$n@$domain=ok,"
    done
    chown -R mail:mail "$DIR/mail"
    cat >"$DIR/dovecot/dovecot.conf" <<EOF
base_dir = $DIR/dovecot/run
state_dir = $DIR/dovecot/state
log_path = $DIR/dovecot/dovecot.log
protocols = imap pop3 lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
auth_cache_size = 10M
auth_cache_ttl = 1 hour
mail_location = maildir:$DIR/mail/%d/%n/Maildir
mail_uid = mail
mail_gid = mail
first_valid_uid = 8
mail_max_userip_connections = 100000
default_client_limit = 20000
default_process_limit = 5000
default_vsz_limit = 1G
passdb {
  driver = passwd-file
  args = $DIR/dovecot/users
}
userdb {
  driver = static
  args = home=$DIR/mail/%d/%n
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $imap
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = $pop3
  }
  inet_listener pop3s {
    port = 0
  }
}
service imap {
  process_limit = 5000
}
service pop3 {
  process_limit = 5000
}
service lmtp {
  unix_listener lmtp {
    mode = 0666
  }
}
protocol imap {
  mail_max_userip_connections = 100000
}
protocol pop3 {
  mail_max_userip_connections = 100000
}
EOF
    dovecot -c "$DIR/dovecot/dovecot.conf"

    # Postfix
    sed -e 's/^\([a-z]\+ \+\(inet\|unix\|unix-dgram\|fifo\|pass\) \+[-ny] \+[-ny] \+\)y /\1n /' \
        -e "s/^smtp \+inet /127.0.0.1:$smtp inet /" \
        /usr/share/postfix/master.cf.dist >"$DIR/postfix/master.cf"
    cat >"$DIR/postfix/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $DIR/spool
data_directory = $DIR/data
mail_owner = postfix
setgid_group = postdrop
myhostname = pd.localhost
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
virtual_mailbox_domains = $domain
virtual_mailbox_maps = inline:{${recipients%,} }
virtual_transport = lmtp:unix:$DIR/dovecot/run/lmtp
message_size_limit = 52428800
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
default_process_limit = 200
biff = no
append_dot_mydomain = no
maillog_file_prefixes = $DIR
maillog_file = $DIR/postfix.log
EOF
    chown postfix "$DIR/data"
    postfix -c "$DIR/postfix" check
    postfix -c "$DIR/postfix" start
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$smtp") 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$imap") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "postfix/dovecot did not start; see $DIR/postfix.log and $DIR/dovecot/dovecot.log" >&2
    return 1
}

drain() {
    for _ in $(seq 3000); do
        [ -z "$(find "$DIR/spool/incoming" "$DIR/spool/active" "$DIR/spool/deferred" "$DIR/spool/maildrop" -type f 2>/dev/null | head -1)" ] && return 0
        sleep 0.1
    done
    echo "postfix queue not empty after 300 s" >&2
    return 1
}

stop() {
    [ -f "$DIR/postfix/main.cf" ] && postfix -c "$DIR/postfix" stop 2>/dev/null || true
    [ -f "$DIR/dovecot/dovecot.conf" ] && doveadm -c "$DIR/dovecot/dovecot.conf" stop 2>/dev/null || true
    if [ -f "$DIR/inotify-instances.saved" ]; then
        cat "$DIR/inotify-instances.saved" >/proc/sys/fs/inotify/max_user_instances
        rm "$DIR/inotify-instances.saved"
    fi
}

case $cmd in
    start) shift 2; start "$@" ;;
    drain) drain ;;
    stop) stop ;;
    *) echo "usage: $0 start|drain|stop DIR ..." >&2; exit 2 ;;
esac
