// PgJDBC client for the client-stack tests: new verify-full connections with client.<user>.crt
// and client.<user>.key.pk8 (DER PKCS#8, as PgJDBC wants), files read anew for every connection
// from the directory the `current` link points at. Prints "ok NODE" or "fail NODE: why" per try.
import java.nio.file.Path;
import java.nio.file.Paths;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.util.Properties;

public class Probe {
    public static void main(String[] args) throws Exception {
        Path current = Paths.get(args[0]);
        String user = args[1];
        while (true) {
            for (int i = 2; i < args.length; i++) {
                String node = args[i];
                try {
                    Path dir = current.toRealPath();
                    Properties props = new Properties();
                    props.setProperty("user", user);
                    props.setProperty("ssl", "true");
                    props.setProperty("sslmode", "verify-full");
                    props.setProperty("sslrootcert", dir.resolve("ca.crt").toString());
                    props.setProperty("sslcert", dir.resolve("client." + user + ".crt").toString());
                    props.setProperty("sslkey", dir.resolve("client." + user + ".key.pk8").toString());
                    props.setProperty("connectTimeout", "5");
                    try (Connection conn = DriverManager.getConnection("jdbc:postgresql://" + node + "/postgres", props);
                         ResultSet rs = conn.createStatement().executeQuery("select 1")) {
                        rs.next();
                    }
                    System.out.println("ok " + node);
                } catch (Exception e) {
                    Throwable root = e;
                    while (root.getCause() != null) root = root.getCause();
                    System.out.println("fail " + node + ": " + String.valueOf(root).replace('\n', ' '));
                }
                System.out.flush();
            }
            Thread.sleep(50);
        }
    }
}
