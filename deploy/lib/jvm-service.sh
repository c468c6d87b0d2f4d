# shellcheck shell=bash
# Shared by deploy/kafka/broker.sh and deploy/s3/s3proxy.sh: a local JVM server whose jars come
# from Maven Central through a pom.xml, started in the background with a pid file, and stopped
# only when that pid is still our server. Sourced, not run.
#
# The caller sets SERVICE_LOG_NAME, the prefix of its log lines (its script's name), before
# calling anything here. Everything else is passed as arguments.

log() { printf '%s: %s\n' "$SERVICE_LOG_NAME" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# usage: require_java PRODUCT (e.g. "Kafka 4"), named in the message when the JDK is too old.
require_java() {
    local product=$1 version major
    command -v java >/dev/null || die "java not found; install a JDK 17 or newer (Debian: apt-get install openjdk-17-jdk-headless)"
    version=$(java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
    major=${version%%.*}
    [[ $major == 1 ]] && major=$(cut -d. -f2 <<<"$version") # 1.8 is Java 8
    [[ $major =~ ^[0-9]+$ && $major -ge 17 ]] || die "java $version found; $product needs Java 17 or newer"
}

pom_hash() { sha256sum "$1" | cut -d' ' -f1; }

# usage: libs_complete LIBS POM: the folder holds a finished download of this very pom.
libs_complete() { [[ -f $1/.complete && $(<"$1/.complete") == "$(pom_hash "$2")" ]]; }

# usage: fetch_jars LIBS POM WHAT [maven options...]
# Downloads into a temporary folder and renames it, under a lock, so concurrent callers (a test
# server, a console tool) never run from a half-copied folder.
fetch_jars() {
    local libs=$1 pom=$2 what=$3
    shift 3
    libs_complete "$libs" "$pom" && return 0
    exec 9>"$libs.lock"
    flock 9
    if ! libs_complete "$libs" "$pom"; then
        command -v mvn >/dev/null || die "mvn not found; install Maven (Debian: apt-get install maven) to fetch the $what jars"
        local staging="$libs.partial.$$" started=$SECONDS
        log "fetching $what jars into $libs"
        rm -rf "$staging"
        # Maven's output is kept for a failure only: -q still prints colour codes on success.
        if ! mvn -q -B "$@" -f "$pom" dependency:copy-dependencies "-DoutputDirectory=$staging" \
            >"$staging.log" 2>&1; then
            cat "$staging.log" >&2
            rm -rf "$staging" "$staging.log"
            die "mvn could not fetch the $what jars (output above)"
        fi
        rm -f "$staging.log"
        pom_hash "$pom" >"$staging/.complete"
        rm -rf "$libs"
        mv "$staging" "$libs"
        log "fetched $(find "$libs" -name '*.jar' | wc -l) jars in $((SECONDS - started)) s"
    fi
    exec 9>&-
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Alive and not a zombie: a server whose parent never reaps it still answers kill -0.
is_alive() {
    local pid=$1 state
    kill -0 "$pid" 2>/dev/null || return 1
    state=$(ps -o stat= -p "$pid" 2>/dev/null) || return 1
    [[ $state != Z* ]]
}

# usage: is_own_process PID MARKER CONFIG
# Only a process started from *our* config may be signalled: the pid may have been reused by
# anything since the pid file was written. MARKER is a word of its command line (main class, jar).
is_own_process() {
    local pid=$1 marker=$2 config=$3 args
    is_alive "$pid" || return 1
    args=$(ps -ww -o args= -p "$pid" 2>/dev/null) || return 1
    [[ $args == *"$marker"* && $args == *"$config"* ]]
}

# usage: own_pid PID_FILE MARKER CONFIG WHAT
# Prints the pid of our running server, or fails (and drops a stale pid file).
own_pid() {
    local pid_file=$1 marker=$2 config=$3 what=$4 pid
    [[ -s $pid_file ]] || return 1
    pid=$(<"$pid_file")
    if [[ $pid =~ ^[0-9]+$ ]] && is_own_process "$pid" "$marker" "$config"; then
        echo "$pid"
        return 0
    fi
    log "removing stale pid file ($pid is not our $what)"
    rm -f "$pid_file"
    return 1
}

# usage: launch_detached PID_FILE LOG_FILE COMMAND...
# setsid detaches the server from the caller's session and process group, so a Ctrl-C in the
# terminal or a test runner ending its group leaves it alone; the script's `stop` is the way to
# end it. The inner bash writes its own pid and then becomes the command, so the pid file names
# the JVM. The server must not inherit the caller's state lock (fd 8).
launch_detached() {
    local pid_file=$1 log_file=$2
    shift 2
    rm -f "$pid_file"
    # shellcheck disable=SC2016  # $$ and $0 are the inner shell's
    nohup setsid bash -c 'echo $$ >"$0" && exec "$@"' "$pid_file" "$@" \
        </dev/null >>"$log_file" 2>&1 8>&- &
}

# usage: stop_process PID_FILE PID TIMEOUT WHAT
# SIGTERM for a clean shutdown, SIGKILL after TIMEOUT seconds; the pid file goes once it is gone.
stop_process() {
    local pid_file=$1 pid=$2 timeout=$3 what=$4
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + timeout))
    while is_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    if is_alive "$pid"; then
        log "$what pid $pid still running after $timeout s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 10))
        while is_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
        is_alive "$pid" && die "$what pid $pid survived SIGKILL"
    fi
    rm -f "$pid_file"
    log "stopped $what pid $pid"
}
