/*
 * kafka_mock.c - a Kafka broker for development and tests: librdkafka's mock
 * cluster in a process of its own.
 *
 * The mock cluster speaks the real Kafka protocol over TCP (produce, fetch,
 * consumer groups, offset commits, idempotent producers), so the producer,
 * the workers and kcat connect to it like to any broker. It lives inside an
 * rd_kafka_t handle; this program creates one, creates the topics with the
 * partition count asked for, publishes the bootstrap address (stdout and,
 * atomically, a file), and waits for SIGTERM or SIGINT.
 *
 *   ds2grist-kafka-mock [--brokers N] [--partitions N] [--bootstrap-file PATH]
 *                       [--slow-acks-ms MS] [--slow-acks-count N] [--topic NAME]...
 *
 * SIGUSR1 makes the next N produce requests of every broker answer MS late
 * (default 4 requests, 2000 ms): the messages are in the log at once, and
 * readable, but their producer waits for the acknowledgement. Tests use it to
 * kill a producer in the window between "written to Kafka" and "acknowledged",
 * where a cursor must not have moved yet.
 *
 * SIGUSR2 makes the next produce request of every broker fail with
 * --fault-error CODE (default 45, OUT_OF_ORDER_SEQUENCE_NUMBER: a fatal error
 * for an idempotent producer with enable.gapless.guarantee=true; 47,
 * INVALID_PRODUCER_EPOCH, only fails the batch in librdkafka 2.0.2), to test
 * how a producer ends on a fatal error.
 *
 * SIGWINCH takes every broker down (connections closed, new ones refused), the
 * next SIGWINCH brings them back: a broker blip. SIGHUP makes the next 3
 * produce requests (any producer) fail with TOPIC_AUTHORIZATION_FAILED, an
 * error that fails the message without ending the producer.
 *
 * Defaults: 1 broker, 6 partitions, topics ds2grist.dossiers, ds2grist.dlq and
 * ds2grist.retry.
 * Limits of the mock (librdkafka 2.0.2): no retention or compaction, at most
 * 100,000 message sets or 5 MiB per partition, oldest dropped first.
 */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_TOPICS 16

static void usage(FILE *f) {
    fprintf(f, "usage: ds2grist-kafka-mock [--brokers N] [--partitions N] "
               "[--bootstrap-file PATH] [--slow-acks-ms MS] [--slow-acks-count N] "
               "[--topic NAME]...\n"
               "Runs librdkafka's mock Kafka cluster until SIGTERM; prints its bootstrap address.\n"
               "SIGUSR1: the next N produce requests of each broker are answered MS late.\n"
               "SIGUSR2: the next produce request of each broker fails with --fault-error.\n"
               "SIGWINCH: every broker goes down; the next SIGWINCH brings them back up.\n"
               "SIGHUP: the next 3 produce requests are refused (topic authorization).\n");
}

/* Write to PATH.tmp then rename, so readers never see a half-written file. */
static int write_file_atomic(const char *path, const char *text) {
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int ok = fprintf(f, "%s\n", text) > 0;
    ok = (fclose(f) == 0) && ok;
    return ok && rename(tmp, path) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
    int brokers = 1, partitions = 6, slow_ms = 2000, slow_count = 4, fault_error = 45;
    const char *bootstrap_file = NULL;
    const char *topics[MAX_TOPICS];
    int n_topics = 0;
    char errstr[512];

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--brokers") && v) {
            brokers = atoi(v), i++;
        } else if (!strcmp(a, "--partitions") && v) {
            partitions = atoi(v), i++;
        } else if (!strcmp(a, "--bootstrap-file") && v) {
            bootstrap_file = v, i++;
        } else if (!strcmp(a, "--slow-acks-ms") && v) {
            slow_ms = atoi(v), i++;
        } else if (!strcmp(a, "--fault-error") && v) {
            fault_error = atoi(v);
            i++;
        } else if (!strcmp(a, "--slow-acks-count") && v) {
            slow_count = atoi(v), i++;
        } else if (!strcmp(a, "--topic") && v && n_topics < MAX_TOPICS) {
            topics[n_topics++] = v, i++;
        } else {
            fprintf(stderr, "ds2grist-kafka-mock: bad argument %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (brokers < 1 || brokers > 9 || partitions < 1 || partitions > 1000 || slow_ms < 0 ||
        slow_ms > 600000 || slow_count < 1 || slow_count > 10000) {
        fprintf(stderr, "ds2grist-kafka-mock: --brokers must be 1-9, --partitions 1-1000, "
                        "--slow-acks-ms 0-600000 and --slow-acks-count 1-10000\n");
        return 2;
    }
    if (n_topics == 0) {
        topics[n_topics++] = "ds2grist.dossiers";
        topics[n_topics++] = "ds2grist.dlq";
        topics[n_topics++] = "ds2grist.retry";
    }

    /* Block the stop signals before librdkafka starts its threads (they
     * inherit the mask), then wait for them with sigwait: no handler, no race. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGUSR1);
    sigaddset(&stop_signals, SIGUSR2);
    sigaddset(&stop_signals, SIGWINCH);
    sigaddset(&stop_signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "ds2grist-kafka-mock: %s\n", errstr);
        return 1;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "ds2grist-kafka-mock: cannot create a handle: %s\n", errstr);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (!mc) {
        fprintf(stderr, "ds2grist-kafka-mock: cannot create the mock cluster\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    for (int i = 0; i < n_topics; i++) {
        rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mc, topics[i], partitions,
                                                             brokers < 3 ? brokers : 3);
        if (err) {
            fprintf(stderr, "ds2grist-kafka-mock: cannot create topic %s: %s\n", topics[i],
                    rd_kafka_err2str(err));
            rd_kafka_mock_cluster_destroy(mc);
            rd_kafka_destroy(rk);
            return 1;
        }
    }

    const char *bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    if (bootstrap_file && write_file_atomic(bootstrap_file, bootstraps) != 0) {
        fprintf(stderr, "ds2grist-kafka-mock: cannot write %s: %s\n", bootstrap_file,
                strerror(errno));
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(rk);
        return 1;
    }
    printf("kafka-mock listening on %s (%d broker(s), %d partitions per topic)\n", bootstraps,
           brokers, partitions);
    fflush(stdout);

    int sig, down = 0;
    while (sigwait(&stop_signals, &sig) == 0 &&
           (sig == SIGUSR1 || sig == SIGUSR2 || sig == SIGWINCH || sig == SIGHUP)) {
        if (sig == SIGWINCH) {
            down = !down;
            for (int b = 1; b <= brokers; b++) {
                if (down)
                    rd_kafka_mock_broker_set_down(mc, b);
                else
                    rd_kafka_mock_broker_set_up(mc, b);
            }
            printf("kafka-mock: brokers %s\n", down ? "down" : "up");
            fflush(stdout);
            continue;
        }
        if (sig == SIGHUP) {
            rd_kafka_mock_push_request_errors(mc, 0 /* Produce */, 3,
                                              RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
                                              RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
                                              RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
            printf("kafka-mock: the next 3 produce requests are refused\n");
            fflush(stdout);
            continue;
        }
        if (sig == SIGUSR2) {
            for (int b = 1; b <= brokers; b++)
                rd_kafka_mock_broker_push_request_error_rtts(mc, b, 0, 1,
                                                             (rd_kafka_resp_err_t)fault_error, 0);
            printf("kafka-mock: the next produce request per broker fails with error %d\n",
                   fault_error);
            fflush(stdout);
            continue;
        }
        /* Produce is ApiKey 0; error 0 with a delay: handled now, answered late. */
        for (int b = 1; b <= brokers; b++)
            for (int k = 0; k < slow_count; k++)
                rd_kafka_mock_broker_push_request_error_rtts(mc, b, 0, 1, RD_KAFKA_RESP_ERR_NO_ERROR,
                                                             slow_ms);
        printf("kafka-mock: the next %d produce requests per broker answer %d ms late\n", slow_count,
               slow_ms);
        fflush(stdout);
    }

    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    if (bootstrap_file)
        unlink(bootstrap_file);
    return 0;
}
