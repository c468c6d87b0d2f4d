import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.errors.TopicExistsException;

/**
 * The two admin steps broker.sh needs, each in a single JVM run from source
 * ({@code java -cp "libs/*" LocalAdmin.java ...}), because a JVM start per poll or per topic costs
 * about a second on a small machine.
 *
 * <pre>
 * await BOOTSTRAP SECONDS [PID]          exit 0 once the broker answers; 1 on timeout; 2 if PID died
 * create-topics BOOTSTRAP PARTITIONS REPLICATION TOPIC[:POLICY]...   create missing topics (TOPIC:compact
 *                                       for a compacted one), keep existing ones
 * </pre>
 */
public final class LocalAdmin {
    private static final int ATTEMPT_TIMEOUT_MS = 2_000;
    private static final long RETRY_PAUSE_MS = 200;

    private LocalAdmin() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            fail("usage: LocalAdmin await BOOTSTRAP SECONDS [PID] | create-topics BOOTSTRAP PARTITIONS REPLICATION TOPIC...");
        }
        switch (args[0]) {
            case "await" -> System.exit(await(args[1], Integer.parseInt(args[2]), args.length > 3 ? Long.parseLong(args[3]) : -1));
            case "create-topics" -> createTopics(args[1], Integer.parseInt(args[2]), Short.parseShort(args[3]),
                    Arrays.asList(args).subList(4, args.length));
            default -> fail("unknown command: " + args[0]);
        }
    }

    /**
     * Polls describeCluster until it lists a node. A KRaft broker only serves client requests once it
     * has caught up with the metadata log and been unfenced, so an answer means topics can be created.
     */
    private static int await(String bootstrap, int seconds, long pid) throws InterruptedException {
        Instant deadline = Instant.now().plusSeconds(seconds);
        try (Admin admin = Admin.create(clientConfig(bootstrap))) {
            while (Instant.now().isBefore(deadline)) {
                if (pid > 0 && !isAlive(pid)) {
                    System.err.println("broker process " + pid + " exited while starting");
                    return 2;
                }
                long remainingMs = Math.max(1, deadline.toEpochMilli() - Instant.now().toEpochMilli());
                if (answers(admin, (int) Math.min(ATTEMPT_TIMEOUT_MS, remainingMs))) {
                    return 0;
                }
                Thread.sleep(RETRY_PAUSE_MS);
            }
        }
        System.err.println("broker at " + bootstrap + " did not answer within " + seconds + " s");
        return 1;
    }

    private static boolean answers(Admin admin, int timeoutMs) throws InterruptedException {
        DescribeClusterOptions options = new DescribeClusterOptions().timeoutMs(timeoutMs);
        try {
            return !admin.describeCluster(options).nodes().get(timeoutMs, TimeUnit.MILLISECONDS).isEmpty();
        } catch (ExecutionException | TimeoutException notYet) {
            return false;
        }
    }

    private static boolean isAlive(long pid) {
        return ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false);
    }

    /** Like TopicCommand --create --if-not-exists for many topics, plus a warning on a layout mismatch. */
    private static void createTopics(String bootstrap, int partitions, short replication, List<String> topics)
            throws InterruptedException {
        List<NewTopic> wanted = new ArrayList<>();
        List<String> names = new ArrayList<>();
        for (String spec : topics) {
            // NAME or NAME:POLICY (a topic name has no colon): NAME:compact for a compacted topic.
            String[] parts = spec.split(":", 2);
            NewTopic topic = new NewTopic(parts[0], partitions, replication);
            if (parts.length > 1) {
                topic.configs(Map.of("cleanup.policy", parts[1]));
            }
            wanted.add(topic);
            names.add(parts[0]);
        }
        List<String> existing = new ArrayList<>();
        try (Admin admin = Admin.create(clientConfig(bootstrap))) {
            Map<String, KafkaFuture<Void>> results = admin.createTopics(wanted).values();
            for (String topic : names) {
                if (!created(topic, results.get(topic), partitions)) {
                    existing.add(topic);
                }
            }
            warnOnPartitionMismatch(admin, existing, partitions);
        }
    }

    private static boolean created(String topic, KafkaFuture<Void> future, int partitions) throws InterruptedException {
        try {
            future.get();
            System.out.println("created topic " + topic + " (" + partitions + " partitions)");
            return true;
        } catch (ExecutionException e) {
            if (e.getCause() instanceof TopicExistsException) {
                System.out.println("topic " + topic + " already exists");
                return false;
            }
            fail("could not create topic " + topic + ": " + e.getCause().getMessage());
            return false;
        }
    }

    /** Existing topics are kept as they are; say so when they differ from what was asked for. */
    private static void warnOnPartitionMismatch(Admin admin, List<String> topics, int partitions)
            throws InterruptedException {
        if (topics.isEmpty()) {
            return;
        }
        try {
            for (TopicDescription topic : admin.describeTopics(topics).allTopicNames().get().values()) {
                if (topic.partitions().size() != partitions) {
                    System.err.println("warning: topic " + topic.name() + " has " + topic.partitions().size()
                            + " partitions, not " + partitions + "; delete it (or run broker.sh clean) to recreate it");
                }
            }
        } catch (ExecutionException e) {
            fail("could not describe topics: " + e.getCause().getMessage());
        }
    }

    private static Properties clientConfig(String bootstrap) {
        Properties config = new Properties();
        config.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(AdminClientConfig.CLIENT_ID_CONFIG, "fraudstream-broker-sh");
        config.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, ATTEMPT_TIMEOUT_MS);
        config.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30_000);
        config.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, 500);
        return config;
    }

    private static void fail(String message) {
        System.err.println(message);
        System.exit(1);
    }
}
