// Starts DynamoDB Local bound to one address (default 127.0.0.1).
//
// DynamoDBLocal.jar has no bind-address option: its Jetty server listens on
// every interface. This launcher builds the server exactly as the jar's own
// main does (same command line flags), sets the host of its Jetty connectors
// before starting it, and then starts it.
//
// Usage: java -cp "DynamoDBLocal.jar:DynamoDBLocal_lib/*:DIR" DynamoDBLocalLoopback
//             [-host 127.0.0.1] <DynamoDBLocal flags...>

import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.List;

public final class DynamoDBLocalLoopback {
    private DynamoDBLocalLoopback() {}

    public static void main(String[] args) throws Exception {
        String host = "127.0.0.1";
        List<String> rest = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            if ("-host".equals(args[i]) && i + 1 < args.length) {
                host = args[++i];
            } else {
                rest.add(args[i]);
            }
        }
        Class<?> runner = Class.forName("com.amazonaws.services.dynamodbv2.local.main.ServerRunner");
        Object proxy = runner
                .getMethod("createServerFromCommandLineArgs", String[].class)
                .invoke(null, (Object) rest.toArray(new String[0]));
        Field serverField = proxy.getClass().getDeclaredField("server");
        serverField.setAccessible(true);
        Object jetty = serverField.get(proxy);
        Object[] connectors = (Object[]) jetty.getClass().getMethod("getConnectors").invoke(jetty);
        if (connectors.length == 0) {
            throw new IllegalStateException("DynamoDB Local has no connector to bind");
        }
        for (Object connector : connectors) {
            Method setHost = connector.getClass().getMethod("setHost", String.class);
            setHost.invoke(connector, host);
        }
        proxy.getClass().getMethod("start").invoke(proxy);
        System.out.println("DynamoDB Local listening on " + host);
    }
}
