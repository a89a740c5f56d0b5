package io.memguard;

/**
 * {@code java -jar memguard.jar status [--json|--prometheus]}: the same report as the Rust
 * {@code memguard status} (rendered by the core), configured by the {@code MEMGUARD_*} variables.
 * Exit status 0 with a report, 2 for an invalid {@code MEMGUARD_*} value, 1 when {@code /proc}
 * cannot be read, 64 for a usage error.
 */
public final class Main {
    private Main() {}

    /** @param args {@code status [--json|--prometheus]}, {@code version} */
    public static void main(String[] args) {
        System.exit(run(args));
    }

    static int run(String[] args) {
        String usage = "usage: java -jar memguard.jar status [--json|--prometheus] | version";
        if (args.length == 0 || args[0].equals("-h") || args[0].equals("--help")) {
            System.out.println(usage);
            return args.length == 0 ? 64 : 0;
        }
        if (args[0].equals("version")) {
            System.out.println("memguard " + MemGuard.version());
            return 0;
        }
        if (!args[0].equals("status") || args.length > 2) {
            System.err.println(usage);
            return 64;
        }
        String format = "text";
        if (args.length == 2) {
            switch (args[1]) {
                case "--json": format = "json"; break;
                case "--prometheus": format = "prometheus"; break;
                default:
                    System.err.println(usage);
                    return 64;
            }
        }
        try {
            String out = MemGuard.status(format);
            System.out.print(out.endsWith("\n") ? out : out + "\n");
            System.out.flush();
            return 0;
        } catch (MemGuardConfigException e) {
            System.err.println("memguard: " + e.getMessage());
            return 2;
        } catch (MemGuardIOException e) {
            System.err.println("memguard: " + e.getMessage());
            return 1;
        }
    }
}
