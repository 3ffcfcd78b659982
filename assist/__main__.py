from dasan.cli import package_main

package_main("assist")
